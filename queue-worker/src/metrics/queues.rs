//! What the queues hold, read from Redis when scraped: one `stats` call per queue, cached
//! briefly so that frequent scrapes (or several scrapers) do not load Redis.
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};
use queue_core::{Error, QueueClient, QueueStats};
use tokio::sync::Mutex;

/// Which queues [`QueueGauges`] reads.
#[derive(Debug, Clone)]
pub enum QueueSelection {
    /// These queues (a worker's own).
    Named(Vec<String>),
    /// Every queue under the client's prefix, listed again at each refresh.
    All,
}

/// The per-queue gauges (jobs by state, latency, paused) and all-time totals, read from Redis
/// at scrape time through the `stats` script and kept for `max_age` (default 1 s).
#[derive(Debug)]
pub struct QueueGauges {
    client: QueueClient,
    queues: QueueSelection,
    max_age: Duration,
    /// The last reading and when it was taken. A lock held across the reading: concurrent
    /// scrapes wait for one reading instead of each making their own.
    cached: Mutex<Option<(Instant, Arc<Reading>)>>,
}

/// One reading of the queues.
#[derive(Debug, Default)]
struct Reading {
    stats: Vec<QueueStats>,
    /// Whether every queue could be read.
    complete: bool,
}

impl QueueGauges {
    /// Gauges of `queues`, read through `client`.
    pub fn new(client: QueueClient, queues: QueueSelection) -> Self {
        QueueGauges {
            client,
            queues,
            max_age: Duration::from_secs(1),
            cached: Mutex::new(None),
        }
    }

    /// How long a reading is served before Redis is asked again (default 1 s).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Adds the current reading to `registry` (reading Redis if the cached one is too old).
    pub async fn register_reading(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.reading().await));
    }

    async fn reading(&self) -> Arc<Reading> {
        let mut cached = self.cached.lock().await;
        if let Some((at, reading)) = cached.as_ref() {
            if at.elapsed() < self.max_age {
                return reading.clone();
            }
        }
        let reading = Arc::new(self.read().await);
        *cached = Some((Instant::now(), reading.clone()));
        reading
    }

    async fn read(&self) -> Reading {
        let names = match &self.queues {
            QueueSelection::Named(names) => names.clone(),
            QueueSelection::All => match self.client.queues().await {
                Ok(names) => names,
                Err(error) => {
                    tracing::warn!(%error, "cannot list the queues for metrics");
                    return Reading::default();
                }
            },
        };
        let mut reading = Reading {
            stats: Vec::with_capacity(names.len()),
            complete: true,
        };
        for name in names {
            let stats = match self.client.queue(&name) {
                Ok(queue) => queue.stats().await,
                Err(error) => Err(error),
            };
            match stats {
                Ok(stats) => reading.stats.push(stats),
                // A worker's queue that has not received a job yet holds none.
                Err(Error::UnknownQueue(_)) => reading.stats.push(empty(name)),
                Err(error) => {
                    tracing::warn!(%error, queue = name, "cannot read the queue's stats for metrics");
                    reading.complete = false;
                }
            }
        }
        reading
    }
}

fn empty(name: String) -> QueueStats {
    QueueStats {
        name,
        ..QueueStats::default()
    }
}

/// A per-queue family: its name, its help, and its value for one queue.
type Family<T> = (&'static str, &'static str, fn(&QueueStats) -> T);

impl Collector for Reading {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let up = ConstGauge::new(i64::from(self.complete));
        up.encode(encoder.encode_descriptor(
            "queue_stats_up",
            "1 if every queue's stats could be read from Redis at this scrape, else 0",
            None,
            MetricType::Gauge,
        )?)?;

        let mut jobs = encoder.encode_descriptor(
            "queue_jobs",
            "Jobs in each state now (completed: those still retained)",
            None,
            MetricType::Gauge,
        )?;
        for stats in &self.stats {
            for (state, count) in [
                ("pending", stats.pending),
                ("scheduled", stats.scheduled),
                ("retrying", stats.retrying),
                ("active", stats.active),
                ("dead", stats.dead),
                ("completed", stats.completed),
            ] {
                let labels = [("queue", stats.name.as_str()), ("state", state)];
                ConstGauge::new(count as i64).encode(jobs.encode_family(&labels)?)?;
            }
        }

        let gauges: [Family<f64>; 2] = [
            (
                "queue_latency_seconds",
                "Age of the job next in line (0 when none is pending)",
                |s| s.latency_ms as f64 / 1000.0,
            ),
            ("queue_paused", "1 if the queue is paused", |s| {
                f64::from(u8::from(s.paused))
            }),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for stats in &self.stats {
                let labels = [("queue", stats.name.as_str())];
                ConstGauge::new(value(stats)).encode(family.encode_family(&labels)?)?;
            }
        }

        let totals: [Family<u64>; 4] = [
            ("queue_enqueued", "All time: jobs enqueued", |s| s.enqueued_total),
            ("queue_completed", "All time: jobs completed", |s| s.completed_total),
            (
                "queue_failed_attempts",
                "All time: attempts that failed (retried or not; expired leases included)",
                |s| s.failed_attempts_total,
            ),
            ("queue_dead", "All time: jobs sent to the dead letter", |s| s.dead_total),
        ];
        for (name, help, value) in totals {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for stats in &self.stats {
                let labels = [("queue", stats.name.as_str())];
                ConstCounter::new(value(stats)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

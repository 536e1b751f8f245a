//! The rate chart's data: the queues' all-time counters, sampled by this process.
//!
//! Redis keeps only running totals (completed, failed attempts), so rates need a history: the
//! dashboard samples every queue's totals every `--sample-every` and keeps the last hour in its
//! own memory. A freshly started dashboard has no history; its chart fills as it runs.
use std::{
    collections::{BTreeMap, VecDeque},
    sync::Mutex,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Shared;

/// How far back the chart looks.
pub(crate) const WINDOW: Duration = Duration::from_secs(3600);

/// One reading of a queue's running totals.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Sample {
    pub(crate) at_ms: i64,
    pub(crate) completed_total: u64,
    pub(crate) failed_attempts_total: u64,
}

/// Jobs per minute between two samples, at the later one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    pub(crate) at_ms: i64,
    pub(crate) processed_per_min: f64,
    pub(crate) failed_per_min: f64,
}

/// The samples of every queue, oldest first, for the last [`WINDOW`].
#[derive(Debug, Serialize)]
pub(crate) struct History {
    every_ms: u64,
    window_ms: u64,
    since_ms: i64,
    #[serde(serialize_with = "serialize_queues")]
    queues: Mutex<BTreeMap<String, VecDeque<Sample>>>,
}

impl History {
    pub(crate) fn new(every: Duration) -> Self {
        History {
            every_ms: every.as_millis() as u64,
            window_ms: WINDOW.as_millis() as u64,
            since_ms: now_ms(),
            queues: Mutex::default(),
        }
    }

    pub(crate) fn every(&self) -> Duration {
        Duration::from_millis(self.every_ms)
    }

    /// When this dashboard started sampling (Unix ms).
    pub(crate) fn since_ms(&self) -> i64 {
        self.since_ms
    }

    fn record(&self, queue: &str, sample: Sample) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let samples = queues.entry(queue.to_owned()).or_default();
        samples.push_back(sample);
        // One sample older than the window stays, so the window's first rate can be computed.
        while samples.len() > 2 && samples[1].at_ms < sample.at_ms - self.window_ms as i64 {
            samples.pop_front();
        }
    }

    /// The rates of `queue`, or of all queues summed when `None`.
    pub(crate) fn rates(&self, queue: Option<&str>) -> Vec<Rate> {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let mut summed: BTreeMap<i64, Rate> = BTreeMap::new();
        for (name, samples) in queues.iter() {
            if queue.is_some_and(|q| q != name) {
                continue;
            }
            for (a, b) in samples.iter().zip(samples.iter().skip(1)) {
                let minutes = (b.at_ms - a.at_ms).max(1) as f64 / 60_000.0;
                // A total that went down (a queue removed and made anew) counts as no work.
                let per_min = |x: u64, y: u64| y.saturating_sub(x) as f64 / minutes;
                // The samples of one round share their time, so queues sum round by round.
                let rate = summed.entry(b.at_ms).or_insert(Rate {
                    at_ms: b.at_ms,
                    processed_per_min: 0.0,
                    failed_per_min: 0.0,
                });
                rate.processed_per_min += per_min(a.completed_total, b.completed_total);
                rate.failed_per_min += per_min(a.failed_attempts_total, b.failed_attempts_total);
            }
        }
        summed.into_values().collect()
    }
}

fn serialize_queues<S: serde::Serializer>(
    queues: &Mutex<BTreeMap<String, VecDeque<Sample>>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    queues.lock().unwrap_or_else(|e| e.into_inner()).serialize(serializer)
}

/// Samples every queue until `stop`.
pub(crate) async fn sample(dashboard: Shared, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(dashboard.history.every());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        match sample_once(&dashboard).await {
            Ok(()) => failing = false,
            // One line per outage, not one per tick.
            Err(error) if !failing => {
                failing = true;
                eprintln!("dashboard: cannot sample the queues' counters: {error:#}");
            }
            Err(_) => {}
        }
    }
}

async fn sample_once(dashboard: &Shared) -> queue_core::Result<()> {
    let client = &dashboard.client;
    let at_ms = now_ms();
    for queue in client.queues().await? {
        let stats = client.queue(&queue)?.stats().await?;
        let sample = Sample {
            at_ms,
            completed_total: stats.completed_total,
            failed_attempts_total: stats.failed_attempts_total,
        };
        dashboard.history.record(&queue, sample);
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: i64, completed_total: u64, failed_attempts_total: u64) -> Sample {
        Sample {
            at_ms,
            completed_total,
            failed_attempts_total,
        }
    }

    #[test]
    fn rates_are_differences_per_minute_summed_over_queues() {
        let history = History::new(Duration::from_secs(10));
        history.record("a", sample(0, 0, 0));
        history.record("b", sample(0, 100, 0));
        history.record("a", sample(10_000, 10, 1));
        history.record("b", sample(10_000, 100, 2));
        assert_eq!(history.rates(Some("a")).len(), 1);
        let all = history.rates(None);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].processed_per_min.round(), 60.0);
        assert_eq!(all[0].failed_per_min.round(), 18.0);
    }

    #[test]
    fn the_history_keeps_one_hour_and_a_fresh_one_has_no_rates() {
        let history = History::new(Duration::from_secs(10));
        assert!(history.rates(None).is_empty());
        history.record("a", sample(0, 0, 0));
        assert!(history.rates(None).is_empty());
        for minute in 1..=120 {
            history.record("a", sample(minute * 60_000, minute as u64, 0));
        }
        let rates = history.rates(Some("a"));
        assert_eq!(rates.len(), 61);
        assert!(rates.iter().all(|r| r.processed_per_min == 1.0));
    }
}

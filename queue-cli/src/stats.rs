//! `queue-cli stats`.
use std::{io::IsTerminal, time::Duration};

use comfy_table::CellAlignment;
use queue_core::{
    fred::{interfaces::ClientLike, types::InfoKind},
    QueueClient, QueueStats,
};
use serde::Serialize;

use crate::{connect, output, ConnectArgs};

#[derive(Debug, clap::Args)]
pub(crate) struct StatsArgs {
    /// Queues to show (default: all).
    queues: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Redraw every interval (e.g. `2s`) until interrupted.
    #[arg(long, value_name = "INTERVAL", value_parser = humantime::parse_duration)]
    watch: Option<Duration>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) queues: Vec<QueueRow>,
    pub(crate) totals: Totals,
    pub(crate) redis: RedisInfo,
}

#[derive(Debug, Serialize)]
pub(crate) struct QueueRow {
    pub(crate) name: String,
    #[serde(flatten)]
    pub(crate) counts: Counts,
    pub(crate) paused: bool,
    pub(crate) latency_ms: u64,
    pub(crate) limits: queue_core::Limits,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Totals {
    #[serde(flatten)]
    pub(crate) counts: Counts,
    /// The highest latency of any queue.
    pub(crate) latency_ms: u64,
}

/// The counts a row shows, in column order; the totals row sums them. The first six are jobs
/// in each state now, the last five count all time.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub(crate) struct Counts {
    pub(crate) pending: u64,
    pub(crate) scheduled: u64,
    pub(crate) retrying: u64,
    pub(crate) active: u64,
    pub(crate) dead: u64,
    pub(crate) completed: u64,
    pub(crate) enqueued_total: u64,
    pub(crate) completed_total: u64,
    pub(crate) failed_attempts_total: u64,
    pub(crate) dead_total: u64,
    pub(crate) cancelled_total: u64,
}

/// The column headers of [`Counts::columns`]; `*` marks the all-time totals.
const COUNT_HEADERS: [&str; 11] = [
    "PENDING",
    "SCHEDULED",
    "RETRYING",
    "ACTIVE",
    "DEAD",
    "COMPLETED",
    "ENQUEUED*",
    "COMPLETED*",
    "FAILED TRIES*",
    "DIED*",
    "CANCELLED*",
];

impl Counts {
    fn columns(&self) -> [u64; 11] {
        [
            self.pending,
            self.scheduled,
            self.retrying,
            self.active,
            self.dead,
            self.completed,
            self.enqueued_total,
            self.completed_total,
            self.failed_attempts_total,
            self.dead_total,
            self.cancelled_total,
        ]
    }

    fn add(&mut self, other: &Counts) {
        self.pending += other.pending;
        self.scheduled += other.scheduled;
        self.retrying += other.retrying;
        self.active += other.active;
        self.dead += other.dead;
        self.completed += other.completed;
        self.enqueued_total += other.enqueued_total;
        self.completed_total += other.completed_total;
        self.failed_attempts_total += other.failed_attempts_total;
        self.dead_total += other.dead_total;
        self.cancelled_total += other.cancelled_total;
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct RedisInfo {
    pub(crate) version: String,
    pub(crate) used_memory_bytes: u64,
    pub(crate) used_memory_human: String,
    pub(crate) maxmemory_policy: String,
}

pub(crate) async fn run(connect_args: &ConnectArgs, args: StatsArgs) -> anyhow::Result<()> {
    let client = connect(connect_args).await?;
    let Some(every) = args.watch else {
        return print(&collect(&client, &args.queues).await?, args.json);
    };
    let clear = !args.json && std::io::stdout().is_terminal();
    // Listening starts now: a signal that arrives while a report is being collected or printed
    // is still seen at the next wait.
    let stop = queue_worker::shutdown_on_signals();
    loop {
        let report = collect(&client, &args.queues).await?;
        if clear {
            output::text("\x1b[2J\x1b[H")?;
        }
        print(&report, args.json)?;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return Ok(()),
        }
    }
}

/// The report `stats --json` prints, for `names` (every queue when empty).
pub(crate) async fn collect(client: &QueueClient, names: &[String]) -> anyhow::Result<Report> {
    let names = if names.is_empty() {
        client.queues().await?
    } else {
        names.to_vec()
    };
    let mut queues = Vec::with_capacity(names.len());
    for name in &names {
        queues.push(QueueRow::from(client.queue(name)?.stats().await?));
    }
    let mut totals = Totals::default();
    for q in &queues {
        totals.counts.add(&q.counts);
        totals.latency_ms = totals.latency_ms.max(q.latency_ms);
    }
    let info: String = client.redis().info(Some(InfoKind::Default)).await?;
    let field = |name: &str| queue_core::info_field(&info, name).to_owned();
    let redis = RedisInfo {
        version: field("redis_version"),
        used_memory_bytes: field("used_memory").parse().unwrap_or(0),
        used_memory_human: field("used_memory_human"),
        maxmemory_policy: field("maxmemory_policy"),
    };
    Ok(Report { queues, totals, redis })
}

impl From<QueueStats> for QueueRow {
    fn from(s: QueueStats) -> Self {
        QueueRow {
            name: s.name,
            counts: Counts {
                pending: s.pending,
                scheduled: s.scheduled,
                retrying: s.retrying,
                active: s.active,
                dead: s.dead,
                completed: s.completed,
                enqueued_total: s.enqueued_total,
                completed_total: s.completed_total,
                failed_attempts_total: s.failed_attempts_total,
                dead_total: s.dead_total,
                cancelled_total: s.cancelled_total,
            },
            paused: s.paused,
            latency_ms: s.latency_ms,
            limits: s.limits,
        }
    }
}

fn print(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        return output::json(report);
    }
    output::text(&render(report))
}

fn render(report: &Report) -> String {
    let mut headers = vec!["QUEUE"];
    headers.extend(COUNT_HEADERS);
    headers.extend(["PAUSED", "LATENCY"]);
    let mut table = output::table(headers);
    let row = |name: &str, counts: [u64; 11], paused: &str, latency_ms: u64| {
        let mut cells = vec![name.to_owned()];
        cells.extend(counts.iter().map(u64::to_string));
        cells.push(paused.to_owned());
        cells.push(output::duration_ms(latency_ms));
        cells
    };
    for q in &report.queues {
        let paused = if q.paused { "yes" } else { "no" };
        table.add_row(row(&q.name, q.counts.columns(), paused, q.latency_ms));
    }
    let t = &report.totals;
    table.add_row(row("TOTAL", t.counts.columns(), "", t.latency_ms));
    for index in 1..=COUNT_HEADERS.len() + 2 {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let queues = match report.queues.len() {
        0 => "no queues yet".to_owned(),
        1 => "1 queue".to_owned(),
        n => format!("{n} queues"),
    };
    let mut text = format!(
        "{table}\n* all time; the other counts are jobs in each state now\n\
         {queues} · Redis {} · memory used {} ({} bytes)\n",
        report.redis.version, report.redis.used_memory_human, report.redis.used_memory_bytes
    );
    // Limits under the table, only for the queues that have any: most have none.
    for q in report
        .queues
        .iter()
        .filter(|q| q.limits != queue_core::Limits::default())
    {
        text.push_str(&format!("limits of {}: {}\n", q.name, q.limits));
    }
    if let Some(warning) = queue_core::eviction_warning(&report.redis.maxmemory_policy) {
        text.push_str(&format!("warning: {warning}\n"));
    }
    text
}

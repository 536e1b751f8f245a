//! `queue-cli enqueue`.
use std::{
    collections::VecDeque,
    future::Future,
    io::{BufRead, BufReader},
    path::PathBuf,
    pin::Pin,
    time::{Duration, SystemTime},
};

use anyhow::{bail, Context};
use futures_util::future::poll_immediate;
use queue_core::{Backoff, NewJob, Queue, QueueClient, Unique};

use crate::output;

/// How many lines of a file go into one all-or-none call.
const BATCH: usize = 1_000;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["payload", "file"])))]
pub(crate) struct EnqueueArgs {
    /// The queue.
    queue: String,
    /// The payload as JSON, e.g. '{"to": "a@example.com"}'.
    payload: Option<String>,
    /// Read one JSON payload per line from this file (`-` for stdin); lines go in all-or-none
    /// batches of 1,000.
    #[arg(long, value_name = "PATH", conflicts_with = "id")]
    file: Option<PathBuf>,
    /// The job kind (selects the handler in Rust workers).
    #[arg(long, default_value = "default")]
    kind: String,
    /// Higher runs first, -1000..=1000.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i32,
    /// Run no earlier than this from now, e.g. `30s`, `2h`.
    #[arg(long, value_parser = parse_delay, allow_hyphen_values = true, conflicts_with = "at")]
    delay: Option<Duration>,
    /// Run no earlier than this time (RFC 3339, e.g. `2026-11-22T18:00:00Z` or `…+01:00`).
    #[arg(long, value_parser = parse_rfc3339)]
    at: Option<SystemTime>,
    /// Attempts before the dead letter.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// `fixed:<duration>`, `exponential:<base>` or `exponential:<base>:<cap>` (cap default 1h).
    #[arg(long, value_parser = parse_backoff)]
    backoff: Option<Backoff>,
    /// `replicated` or `replicated:N`: return only once N replicas (default 1) have the job,
    /// else fail saying it was written to the master only (see the README on failovers).
    #[arg(long, value_name = "master|replicated[:N]", default_value = "master", value_parser = crate::parse_durability)]
    pub(crate) durability: queue_core::Durability,
    /// An explicit job id: enqueueing an id that exists prints it and writes nothing.
    #[arg(long)]
    id: Option<String>,
    /// A unique key: while a job holds it, enqueueing another job with it prints the holder's
    /// id and writes nothing. Held until the job finishes (completes or dies), or for
    /// `--unique-for`.
    #[arg(long, value_name = "KEY", conflicts_with = "file")]
    unique_key: Option<String>,
    /// Hold the unique key for this long after enqueue (e.g. `10m`), whatever the job does.
    #[arg(long, value_name = "DURATION", value_parser = parse_delay, requires = "unique_key")]
    unique_for: Option<Duration>,
    /// Run this long after enqueue; another enqueue with the same `--unique-key` while the job
    /// still waits replaces it (payload and options) and pushes its run time back.
    #[arg(long, value_name = "DURATION", value_parser = parse_delay, requires = "unique_key",
          conflicts_with_all = ["unique_for", "delay", "at"])]
    debounce: Option<Duration>,
    /// The job's group (a tenant, a customer): groups take turns for the workers, and the
    /// queue's group limits hold per group (see `queue-cli limit`).
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Print JSON: `{"id", "created", "duplicate"}`.
    #[arg(long, conflicts_with = "file")]
    json: bool,
}

impl EnqueueArgs {
    fn job(&self, json: &str) -> queue_core::Result<NewJob> {
        let mut job = NewJob::from_json(&self.kind, json)?
            .priority(self.priority)
            .max_attempts(self.max_attempts);
        if let Some(backoff) = self.backoff {
            job = job.backoff(backoff);
        }
        if let Some(delay) = self.delay {
            job = job.delay(delay);
        }
        if let Some(at) = self.at {
            job = job.run_at(at);
        }
        if let Some(id) = &self.id {
            job = job.id(id);
        }
        if let Some(group) = &self.group {
            job = job.group(group);
        }
        if let Some(key) = &self.unique_key {
            job = match (self.debounce, self.unique_for) {
                (Some(delay), _) => job.debounce(key, delay),
                (None, Some(duration)) => job.unique(key, Unique::For(duration)),
                (None, None) => job.unique(key, Unique::UntilFinished),
            };
        }
        Ok(job)
    }
}

pub(crate) async fn run(client: &QueueClient, args: EnqueueArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.file {
        return enqueue_file(client, &args, path).await;
    }
    let payload = args.payload.as_deref().expect("clap requires a payload or --file");
    let enqueued = client.queue(&args.queue)?.enqueue(args.job(payload)?).await?;
    if args.json {
        return output::json(&serde_json::json!({
            "id": enqueued.id,
            "created": enqueued.created,
            "duplicate": enqueued.duplicate,
        }));
    }
    if enqueued.duplicate {
        eprintln!(
            "job {} holds unique key {:?} in {}; nothing written",
            enqueued.id,
            args.unique_key.as_deref().unwrap_or_default(),
            args.queue
        );
    } else if !enqueued.created {
        eprintln!("job {} already exists in {}; nothing written", enqueued.id, args.queue);
    }
    output::line(format_args!("{}", enqueued.id))
}

async fn enqueue_file(client: &QueueClient, args: &EnqueueArgs, path: &PathBuf) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Box::new(BufReader::new(file))
    };
    let progress = output::spinner("{spinner} {pos} jobs enqueued ({per_sec})");
    let queue = client.queue(&args.queue)?;
    let mut sent = InFlight::new(&progress);
    let mut batch = Vec::with_capacity(BATCH);
    let mut lines = reader.lines().enumerate();
    loop {
        let next = lines.next();
        if let Some((index, line)) = &next {
            let number = index + 1;
            let line = match line {
                Ok(line) => line,
                Err(error) => {
                    let message = format!("line {number}: cannot read: {error} (nothing of its batch was written");
                    return sent.fail(message, "earlier lines").await;
                }
            };
            if !line.trim().is_empty() {
                match args.job(line).and_then(|job| client.validate(&job).map(|()| job)) {
                    Ok(job) => batch.push(job),
                    Err(error) => {
                        let message = format!("line {number}: {error} (nothing of its batch was written");
                        return sent.fail(message, "earlier lines").await;
                    }
                }
            }
        }
        if batch.len() == BATCH || (next.is_none() && !batch.is_empty()) {
            sent.send(&queue, std::mem::take(&mut batch)).await?;
        }
        if next.is_none() {
            break;
        }
    }
    let added = sent.finish().await?;
    progress.finish_and_clear();
    output::line(format_args!("added {added} jobs to {}", args.queue))
}

type Answer<'a> = Pin<Box<dyn Future<Output = queue_core::Result<Vec<queue_core::Enqueued>>> + Send + 'a>>;

/// The batches of a file sent and not yet answered. Several in flight keep Redis busy while the
/// next batch is read and checked; they reach Redis in file order, because each is sent (its
/// future polled once) before the next is made.
struct InFlight<'a> {
    batches: VecDeque<(u64, Answer<'a>)>,
    added: u64,
    progress: &'a indicatif::ProgressBar,
}

impl<'a> InFlight<'a> {
    /// Batches in flight at once: as many as keep a local Redis busy.
    const MAX: usize = 4;

    fn new(progress: &'a indicatif::ProgressBar) -> Self {
        InFlight {
            batches: VecDeque::new(),
            added: 0,
            progress,
        }
    }

    async fn send(&mut self, queue: &'a Queue, jobs: Vec<NewJob>) -> anyhow::Result<()> {
        let count = jobs.len() as u64;
        let mut answer: Answer<'a> = Box::pin(queue.enqueue_bulk(jobs));
        // The first batch also indexes the queue, a call of its own: it is answered before the
        // next is sent, so that the next cannot overtake it.
        if self.added == 0 && self.batches.is_empty() {
            self.batches.push_back((count, answer));
            return self.answered().await;
        }
        if let Some(done) = poll_immediate(&mut answer).await {
            self.batches.push_back((count, Box::pin(std::future::ready(done))));
        } else {
            self.batches.push_back((count, answer));
        }
        if self.batches.len() >= Self::MAX {
            self.answered().await?;
        }
        Ok(())
    }

    /// Waits for the oldest batch's answer.
    async fn answered(&mut self) -> anyhow::Result<()> {
        let Some((count, answer)) = self.batches.pop_front() else {
            return Ok(());
        };
        if let Err(error) = answer.await {
            let message = format!("{error} (nothing of this batch was written");
            return self.fail(message, "other batches").await;
        }
        self.added += count;
        self.progress.set_position(self.added);
        Ok(())
    }

    /// Waits for every batch in flight; returns how many jobs were written.
    async fn finish(mut self) -> anyhow::Result<u64> {
        while !self.batches.is_empty() {
            self.answered().await?;
        }
        Ok(self.added)
    }

    /// Fails with `message` (which leaves a parenthesis open) once the batches in flight are
    /// answered, so that it can say how many jobs from `which` were written.
    async fn fail(&mut self, message: String, which: &str) -> anyhow::Result<()> {
        let mut added = self.added;
        let mut lost = None;
        for (count, answer) in std::mem::take(&mut self.batches) {
            match answer.await {
                Ok(_) => added += count,
                Err(error) => lost = lost.or(Some(error)),
            }
        }
        self.progress.finish_and_clear();
        match lost {
            Some(other) => bail!("{message}; {added} jobs from {which} were; another batch failed too: {other})"),
            None => bail!("{message}; {added} jobs from {which} were)"),
        }
    }
}

fn parse_delay(text: &str) -> Result<Duration, String> {
    if text.starts_with('-') {
        return Err("a delay cannot be negative".into());
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 500ms, 30s, 2h)"))
}

fn parse_backoff(spec: &str) -> Result<Backoff, String> {
    let parse = |d: &str| humantime::parse_duration(d).map_err(|e| format!("{d:?}: {e}"));
    match spec.split(':').collect::<Vec<_>>()[..] {
        ["fixed", delay] => Ok(Backoff::fixed(parse(delay)?)),
        ["exponential", base] => Ok(Backoff::exponential(parse(base)?, Duration::from_secs(3600))),
        ["exponential", base, cap] => Ok(Backoff::exponential(parse(base)?, parse(cap)?)),
        _ => Err("expected fixed:<duration>, exponential:<base> or exponential:<base>:<cap>".into()),
    }
}

/// RFC 3339 with `Z` or a numeric offset (`+01:00`), as `SystemTime`.
fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let time: jiff::Timestamp = text
        .parse()
        .map_err(|e| format!("{text:?} is not an RFC 3339 time ({e}); e.g. 2026-11-22T18:00:00Z"))?;
    SystemTime::try_from(time).map_err(|e| format!("{text:?} is out of range ({e})"))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::{parse_backoff, parse_delay, parse_rfc3339};

    #[test]
    fn a_time_with_an_offset_is_the_same_instant_as_in_utc() {
        let utc = parse_rfc3339("2026-11-22T18:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2026-11-22T19:30:00+01:30").unwrap(), utc);
        assert_eq!(parse_rfc3339("2026-11-22T13:00:00-05:00").unwrap(), utc);
        assert_eq!(utc.duration_since(UNIX_EPOCH).unwrap().as_secs(), 1_795_370_400);
        let refused = parse_rfc3339("2026-11-22 18:00").unwrap_err();
        assert!(refused.contains("is not an RFC 3339 time"), "{refused}");
    }

    #[test]
    fn delays_and_backoffs_read_as_documented() {
        assert_eq!(parse_delay("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_delay("-1s").unwrap_err(), "a delay cannot be negative");
        assert!(parse_backoff("fixed:5s").is_ok());
        assert!(parse_backoff("exponential:1s:10m").is_ok());
        assert!(parse_backoff("linear:1s").is_err());
    }
}

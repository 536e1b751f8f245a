//! A small service that both enqueues and works: two payload types and their handlers (one of
//! which refuses bad data for good), work enqueued in bulk, with priorities, a delay and a
//! flaky job, then a worker that runs until its queues are drained (or Ctrl-C / SIGTERM).
//!
//! Uses `QUEUE_REDIS_URL` when set; otherwise starts a throwaway redis-server.
use std::time::Duration;

use queue::{Backoff, JobContext, JobError, JobPayload, NewJob, QueueClient, Worker};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Resize {
    image: String,
    width: u32,
}

impl JobPayload for Resize {
    const KIND: &'static str = "resize";
}

#[derive(Debug, Serialize, Deserialize)]
struct Email {
    to: String,
    subject: String,
}

impl JobPayload for Email {
    const KIND: &'static str = "send_email";
    fn options(job: NewJob) -> NewJob {
        job.backoff(Backoff::fixed(Duration::from_millis(100)))
    }
}

async fn resize(job: Resize, ctx: JobContext) -> Result<(), JobError> {
    if job.width == 0 {
        // Bad data: no retry can fix it, so it goes straight to the dead letter.
        return Err(JobError::permanent(format!("{}: width must be positive", job.image)));
    }
    tokio::time::sleep(Duration::from_millis(20)).await; // the "work"
    println!("  resized {} to {}px (attempt {})", job.image, job.width, ctx.attempt());
    Ok(())
}

async fn send_email(email: Email, ctx: JobContext) -> Result<(), JobError> {
    if email.to.ends_with("@flaky.example") && ctx.attempt() < 3 {
        // A transient failure: retried with the job's backoff.
        return Err(JobError::retry(format!("SMTP timeout (attempt {})", ctx.attempt())));
    }
    println!("  sent {:?} to {} (attempt {})", email.subject, email.to, ctx.attempt());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (_server, url) = match std::env::var("QUEUE_REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let server = throwaway_redis::RedisServer::start()?;
            let url = server.url();
            println!("started a throwaway redis-server at {url}");
            (Some(server), url)
        }
    };
    let client = QueueClient::connect(&url).await?;

    let mut images = Vec::new();
    for (i, width) in [640, 320, 0, 1280].into_iter().enumerate() {
        let job = NewJob::of(&Resize {
            image: format!("photo-{i}.jpg"),
            width,
        });
        images.push(job.priority(if width > 1000 { 10 } else { 0 }));
    }
    let (images_queue, emails_queue) = (client.queue("images")?, client.queue("emails")?);
    let enqueued = images_queue.enqueue_bulk(images).await?;
    println!("enqueued {} resize jobs in one atomic call", enqueued.len());
    for (to, subject, delay) in [
        ("ada@example.com", "welcome", Duration::ZERO),
        ("bob@flaky.example", "receipt", Duration::ZERO),
        ("cy@example.com", "reminder", Duration::from_millis(500)),
    ] {
        let email = NewJob::of(&Email {
            to: to.into(),
            subject: subject.into(),
        });
        emails_queue.enqueue(email.delay(delay)).await?;
    }
    println!("enqueued 3 emails (one flaky, one delayed by 500ms)");

    let worker = Worker::builder(client.clone())
        .queue("images")
        .queue("emails")
        .concurrency(4)
        .handle(resize)
        .handle(send_email)
        .build();
    // Until nothing is left to run (completed or dead), or a signal.
    let report = worker.run_until_drained(queue::shutdown_on_signals()).await?;
    println!("worker stopped gracefully: {report:?}");

    for queue in client.queues().await? {
        let s = client.queue(&queue)?.stats().await?;
        println!(
            "{queue:>7}: completed_total={} failed_attempts_total={} dead={} pending={} active={}",
            s.completed_total, s.failed_attempts_total, s.dead, s.pending, s.active
        );
    }
    for dead in images_queue.dead_list(0, 10).await?.jobs {
        println!(
            "dead letter: {} after {} attempt(s): {}",
            dead.id, dead.attempts, dead.error
        );
    }
    Ok(())
}

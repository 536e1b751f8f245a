//! A small service: two typed handlers (one of which refuses bad data for good), work enqueued
//! in bulk, with priorities, a delay and a flaky job, then a worker that runs it all and shuts
//! down gracefully (when the work is done, or on Ctrl-C / SIGTERM).
//!
//! Uses `QUEUE_REDIS_URL` when set; otherwise starts a throwaway redis-server.
use std::time::Duration;

use queue::{Backoff, JobContext, JobError, NewJob, QueueClient, Worker};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Resize {
    image: String,
    width: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Email {
    to: String,
    subject: String,
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
        let job = NewJob::new(
            "resize",
            &Resize {
                image: format!("photo-{i}.jpg"),
                width,
            },
        )?;
        images.push(job.priority(if width > 1000 { 10 } else { 0 }));
    }
    let enqueued = client.enqueue_bulk("images", images).await?;
    println!("enqueued {} resize jobs in one atomic call", enqueued.len());
    let retry_fast = Backoff::fixed(Duration::from_millis(100));
    for (to, subject, delay) in [
        ("ada@example.com", "welcome", Duration::ZERO),
        ("bob@flaky.example", "receipt", Duration::ZERO),
        ("cy@example.com", "reminder", Duration::from_millis(500)),
    ] {
        let email = NewJob::new(
            "send_email",
            &Email {
                to: to.into(),
                subject: subject.into(),
            },
        )?;
        client.enqueue("emails", email.delay(delay).backoff(retry_fast)).await?;
    }
    println!("enqueued 3 emails (one flaky, one delayed by 500ms)");

    let worker = Worker::builder(client.clone())
        .queue("images", 1)
        .queue("emails", 1)
        .concurrency(4)
        .handle("resize", resize)
        .handle("send_email", send_email)
        .build();
    let shutdown = queue::shutdown_on_signals();
    let running = tokio::spawn(worker.run(shutdown.clone()));

    // Stop once everything has finished (completed or dead).
    loop {
        let (images, emails) = (client.stats("images").await?, client.stats("emails").await?);
        if images.processed + images.dead == 4 && emails.processed == 3 {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    shutdown.cancel();
    let report = running.await??;
    println!("worker stopped gracefully: {report:?}");

    for queue in client.queues().await? {
        let s = client.stats(&queue).await?;
        println!(
            "{queue:>7}: processed={} failed={} dead={} pending={} active={}",
            s.processed, s.failed, s.dead, s.pending, s.active
        );
    }
    for dead in client.dead_list("images", 0, 10).await?.jobs {
        println!(
            "dead letter: {} after {} attempt(s): {}",
            dead.id, dead.attempts, dead.error
        );
    }
    Ok(())
}

//! The demo: enqueue work with priorities, a delay and a job that keeps failing, take it through
//! its whole life with the lease calls, and print the stats.
//!
//! Uses `QUEUE_REDIS_URL` when set; otherwise starts a throwaway redis-server.
use std::time::Duration;

use queue::{Backoff, FailOutcome, NewJob, QueueClient};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Resize {
    image: String,
    width: u32,
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

    let mut jobs = Vec::new();
    for (i, priority) in [0, 0, 10, 0, 10].into_iter().enumerate() {
        let payload = Resize {
            image: format!("photo-{i}.jpg"),
            width: 640,
        };
        jobs.push(NewJob::new("resize", &payload)?.priority(priority));
    }
    let urgent = NewJob::new(
        "resize",
        &Resize {
            image: "broken.jpg".into(),
            width: 0,
        },
    )?
    .priority(20)
    .max_attempts(2)
    .backoff(Backoff::fixed(Duration::from_millis(100)));
    jobs.push(urgent);
    jobs.push(
        NewJob::new(
            "resize",
            &Resize {
                image: "later.jpg".into(),
                width: 320,
            },
        )?
        .delay(Duration::from_millis(300)),
    );
    let added = client.enqueue_bulk("demo", jobs).await?;
    println!("enqueued {} jobs in one atomic call", added.len());

    let mut finished = 0;
    while finished < added.len() {
        let popped = client.pop("demo", 10, Duration::from_secs(30)).await?;
        if popped.jobs.is_empty() {
            // A worker would block on the wake-up list until this due time; the demo just waits.
            let wait = popped
                .next_due_ms
                .map_or(50, |due| (due - popped.now_ms).clamp(1, 1000));
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            continue;
        }
        for leased in popped.jobs {
            let envelope = leased.envelope()?;
            let resize: Resize = envelope.decode()?;
            if resize.width == 0 {
                let outcome = client
                    .fail("demo", &leased.id, &leased.token, "width must be positive", false)
                    .await?;
                println!(
                    "  {} (attempt {}) failed -> {:?}",
                    resize.image, leased.attempt, outcome
                );
                if outcome == FailOutcome::Dead {
                    finished += 1;
                }
            } else {
                client.complete("demo", &[(&leased.id, &leased.token)]).await?;
                println!(
                    "  {} (priority {}) resized to {}px",
                    resize.image, envelope.priority, resize.width
                );
                finished += 1;
            }
        }
    }

    let stats = client.stats("demo").await?;
    println!(
        "stats: processed={} failed={} dead={} pending={} active={}",
        stats.processed, stats.failed, stats.dead, stats.pending, stats.active
    );
    for dead in client.dead_list("demo", 0, 10).await?.jobs {
        println!(
            "dead letter: {} after {} attempts: {}",
            dead.id, dead.attempts, dead.error
        );
    }
    Ok(())
}

//! `cargo bench -p queue-core`: what the worker pays per job to decode an envelope and its
//! payload, and what the client pays to encode one. No harness dependency: each case runs for
//! a fixed number of iterations and prints nanoseconds per operation.
use std::{hint::black_box, time::Instant};

use queue_core::{Backoff, Envelope};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Email {
    to: String,
    subject: String,
    body: String,
}

fn envelope(payload: Vec<u8>, backoff: Backoff) -> Envelope {
    Envelope {
        id: "0192f0e4-7d1c-7b2a-9c3e-5f4a3b2c1d0e".into(),
        queue: "emails".into(),
        kind: "send_email".into(),
        payload,
        priority: 0,
        max_attempts: 3,
        backoff,
        timeout_ms: None,
        trace_parent: None,
    }
}

fn measure(name: &str, iterations: u32, mut operation: impl FnMut()) {
    for _ in 0..iterations / 10 {
        operation();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        operation();
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(iterations);
    println!("{name:<44} {ns:>9.0} ns/op");
}

fn main() {
    const N: u32 = 200_000;
    let email = Email {
        to: "someone@example.com".into(),
        subject: "Your order shipped".into(),
        body: "x".repeat(200),
    };
    let payload = rmp_serde::to_vec(&email).expect("encodes");
    for (label, backoff) in [
        ("exponential", Backoff::default()),
        ("fixed", Backoff::fixed(std::time::Duration::from_secs(5))),
    ] {
        let envelope = envelope(payload.clone(), backoff);
        let bytes = envelope.to_msgpack();
        measure(&format!("envelope encode ({label} backoff)"), N, || {
            black_box(black_box(&envelope).to_msgpack());
        });
        measure(&format!("envelope decode ({label} backoff)"), N, || {
            black_box(Envelope::from_msgpack(black_box(&bytes)).expect("decodes"));
        });
    }
    let envelope = envelope(payload, Backoff::default());
    measure("payload decode (typed, 3 strings)", N, || {
        black_box(black_box(&envelope).decode::<Email>().expect("decodes"));
    });
    measure("payload decode (serde_json::Value)", N, || {
        black_box(black_box(&envelope).payload_json().expect("decodes"));
    });
}

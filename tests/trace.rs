//! The trace context kept with a job (W3C traceparent): stored in the envelope, compatible with
//! jobs stored before it, handed to handlers and `--exec` commands, and, with the `otel`
//! feature, the parent of the job's span.
use std::time::Duration;

use queue::{Envelope, NewJob, Worker};
use tokio::sync::mpsc;

use crate::support::{file_appears, spawn_queue_worker, spawn_worker, start};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn a_jobs_traceparent_reaches_its_handler() {
    let q = start().await;
    q.queue()
        .enqueue(NewJob::new("traced", &1).trace_parent(TRACEPARENT))
        .await
        .unwrap();
    q.queue().enqueue(NewJob::new("traced", &2)).await.unwrap();
    let (seen, mut handled) = mpsc::unbounded_channel();
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("traced", move |n: u32, ctx| {
            let seen = seen.clone();
            async move {
                let _ = seen.send((n, ctx.trace_parent().map(str::to_owned)));
                Ok(())
            }
        })
        .build();
    let (stop, handle) = spawn_worker(worker);
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(
            tokio::time::timeout(Duration::from_secs(10), handled.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    got.sort();
    assert_eq!(got, [(1, Some(TRACEPARENT.to_owned())), (2, None)]);
    stop.cancel();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn exec_commands_get_the_jobs_traceparent_in_their_environment() {
    let q = start().await;
    let dir = tempfile::tempdir().unwrap();
    q.queue()
        .enqueue(NewJob::new("traced", &()).id("t1").trace_parent(TRACEPARENT))
        .await
        .unwrap();
    let _worker = spawn_queue_worker(
        &q.redis.url(),
        dir.path(),
        "w",
        &[
            "--queue",
            "q",
            "--exec",
            r#"printf %s "$TRACEPARENT" > "$D/$QUEUE_JOB_ID""#,
        ],
    );
    file_appears(&dir.path().join("t1")).await;
    let written = crate::support::eventually("the command's output", Duration::from_secs(10), || async {
        let text = std::fs::read_to_string(dir.path().join("t1")).unwrap_or_default();
        (!text.is_empty()).then_some(text)
    })
    .await;
    assert_eq!(written, TRACEPARENT);
}

#[test]
fn envelopes_stored_before_the_trace_field_still_decode_and_untraced_ones_do_not_store_it() {
    // The stored form of an envelope written before `trace_parent` existed.
    #[derive(serde::Serialize)]
    struct OldEnvelope {
        id: &'static str,
        queue: &'static str,
        kind: &'static str,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        priority: i32,
        max_attempts: u32,
        backoff: queue::Backoff,
        timeout_ms: Option<u64>,
    }
    let old = OldEnvelope {
        id: "j",
        queue: "q",
        kind: "k",
        payload: vec![1],
        priority: 0,
        max_attempts: 3,
        backoff: queue::Backoff::fixed(Duration::from_millis(5)),
        timeout_ms: None,
    };
    let bytes = rmp_serde::to_vec_named(&old).unwrap();
    let envelope = Envelope::from_msgpack(&bytes).unwrap();
    assert_eq!((envelope.id.as_str(), envelope.trace_parent), ("j", None));

    let untraced = Envelope {
        trace_parent: None,
        ..Envelope::from_msgpack(&bytes).unwrap()
    };
    let stored = untraced.to_msgpack();
    assert!(
        !stored.windows(11).any(|w| w == b"trace_paren"),
        "an absent field costs no bytes"
    );
    let traced = Envelope {
        trace_parent: Some(TRACEPARENT.into()),
        ..untraced
    };
    assert_eq!(Envelope::from_msgpack(&traced.to_msgpack()).unwrap(), traced);
}

/// With OpenTelemetry, enqueueing inside a span keeps its context, and the job's span is its
/// child: one trace from the request to the handler. Exported to memory, no network.
#[cfg(feature = "otel")]
#[tokio::test(flavor = "current_thread")]
async fn with_otel_the_jobs_span_continues_the_trace_of_the_span_that_enqueued_it() {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    // This thread only: the current-thread runtime runs the worker's tasks here too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let q = start().await;
    let request = tracing::info_span!("request");
    q.queue()
        .enqueue(NewJob::new("traced", &()))
        .instrument(request.clone())
        .await
        .unwrap();
    drop(request);
    let worker = Worker::builder(q.client.clone())
        .queue("q")
        .handle_kind("traced", |_: (), ctx| async move {
            assert!(ctx.trace_parent().is_some(), "enqueue kept the request's context");
            Ok(())
        })
        .build();
    let report = worker.run_until_drained(queue::CancellationToken::new()).await.unwrap();
    assert_eq!(report.completed, 1);
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let request = spans.iter().find(|s| s.name == "request").expect("the request's span");
    let job = spans.iter().find(|s| s.name == "job").expect("the job's span");
    assert_eq!(job.span_context.trace_id(), request.span_context.trace_id());
    assert_eq!(job.parent_span_id, request.span_context.span_id());
    let outcome = job.attributes.iter().find(|kv| kv.key.as_str() == "outcome");
    assert_eq!(
        outcome.map(|kv| kv.value.as_str().into_owned()),
        Some("completed".into())
    );
}

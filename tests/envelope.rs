use queue::{Envelope, NewJob};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Email {
    to: String,
    cc: Vec<String>,
}

#[tokio::test]
async fn typed_payloads_round_trip_and_read_as_json() {
    let q = crate::support::start().await;
    let email = Email {
        to: "a@b.c".into(),
        cc: vec!["d@e.f".into()],
    };
    q.queue().enqueue(NewJob::new("send", &email)).await.unwrap();
    q.client
        .queue("q")
        .unwrap()
        .enqueue(NewJob::from_json("send", r#"{"to": "x@y.z", "cc": []}"#).unwrap())
        .await
        .unwrap();
    let jobs = q
        .client
        .queue("q")
        .unwrap()
        .pop(2, std::time::Duration::from_secs(5))
        .await
        .unwrap()
        .jobs;
    let first = jobs[0].envelope().unwrap();
    assert_eq!(first.decode::<Email>().unwrap(), email);
    assert_eq!(
        first.payload_json().unwrap(),
        serde_json::json!({"to": "a@b.c", "cc": ["d@e.f"]})
    );
    let second = jobs[1].envelope().unwrap();
    assert_eq!(
        second.decode::<Email>().unwrap(),
        Email {
            to: "x@y.z".into(),
            cc: vec![]
        },
        "JSON from other languages"
    );
    let mismatch = second.decode::<u64>().unwrap_err();
    assert!(mismatch.to_string().contains("does not decode as u64"), "{mismatch}");
}

#[test]
fn an_undecodable_envelope_is_a_clear_error() {
    let err = Envelope::from_msgpack(b"\xc1garbage").unwrap_err();
    assert!(err.to_string().contains("undecodable envelope"), "{err}");
}

#[test]
fn both_backoffs_round_trip_in_their_stored_form() {
    use queue::Backoff;
    use std::time::Duration;
    for backoff in [
        Backoff::fixed(Duration::from_secs(5)),
        Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60)),
    ] {
        let envelope = Envelope {
            id: "j".into(),
            queue: "q".into(),
            kind: "k".into(),
            payload: rmp_serde::to_vec(&1).unwrap(),
            priority: 0,
            max_attempts: 3,
            backoff,
            timeout_ms: None,
        };
        let bytes = envelope.to_msgpack();
        assert_eq!(Envelope::from_msgpack(&bytes).unwrap(), envelope);
        // The stored form names the variant in a "kind" field beside its own fields.
        let stored: serde_json::Value = rmp_serde::from_slice(&rmp_serde::to_vec_named(&backoff).unwrap()).unwrap();
        let kind = if matches!(backoff, Backoff::Fixed { .. }) {
            "fixed"
        } else {
            "exponential"
        };
        assert_eq!(stored["kind"], kind);
    }
    let missing_field = serde_json::json!({"kind": "fixed"});
    let bytes = rmp_serde::to_vec_named(&missing_field).unwrap();
    assert!(rmp_serde::from_slice::<Backoff>(&bytes).is_err());
}

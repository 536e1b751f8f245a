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
    q.client
        .enqueue("q", NewJob::new("send", &email).unwrap())
        .await
        .unwrap();
    q.client
        .enqueue("q", NewJob::from_json("send", r#"{"to": "x@y.z", "cc": []}"#).unwrap())
        .await
        .unwrap();
    let jobs = q
        .client
        .pop("q", 2, std::time::Duration::from_secs(5))
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

use queue::{
    fred::{interfaces::LuaInterface, types::Value},
    low_level::{KeyCount, ScriptRegistry},
    Error, NewJob,
};

use crate::support::start;

/// Whether each defined script is in Redis's script cache, in definition order.
async fn loaded_flags(registry: &ScriptRegistry, q: &crate::support::TestQueue) -> Vec<bool> {
    let loaded = registry.loaded(q.client.redis()).await.unwrap();
    loaded.iter().map(|(_, loaded)| *loaded).collect()
}

const INCR_BY: &str = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

#[tokio::test]
async fn a_user_defined_script_runs_by_name() {
    let q = start().await;
    let registry = ScriptRegistry::new();
    let script = registry.define("incr_by", KeyCount::Fixed(1), INCR_BY).unwrap();
    assert_eq!(script.sha1().len(), 40);
    let total: i64 = registry
        .run(q.client.redis(), "incr_by", &["counter"], vec![5.into()])
        .await
        .unwrap();
    assert_eq!(total, 5);
    let total: i64 = registry
        .run(q.client.redis(), "incr_by", &["counter"], vec![2.into()])
        .await
        .unwrap();
    assert_eq!(total, 7);
}

#[tokio::test]
async fn definitions_are_checked() {
    let q = start().await;
    let registry = ScriptRegistry::new();
    registry.define("incr_by", KeyCount::Fixed(1), INCR_BY).unwrap();
    registry
        .define("incr_by", KeyCount::Fixed(1), INCR_BY)
        .expect("same definition again is fine");
    assert!(matches!(
        registry.define("incr_by", KeyCount::Fixed(1), "return 1"),
        Err(Error::ScriptConflict(_))
    ));
    let err = registry
        .run::<i64, _>(q.client.redis(), "incr_by", &["a", "b"], vec![])
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::WrongKeyCount {
            expected: 1,
            got: 2,
            ..
        }
    ));
    let err = registry
        .run::<i64, _>(q.client.redis(), "nope", &["a"], vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownScript(name) if name == "nope"));

    registry
        .define("sum", KeyCount::Dynamic, "return #KEYS + #ARGV")
        .unwrap();
    let n: i64 = registry
        .run(q.client.redis(), "sum", &["a", "b", "c"], vec![1.into()])
        .await
        .unwrap();
    assert_eq!(n, 4);
    let names: Vec<String> = registry.list().iter().map(|s| s.name().to_owned()).collect();
    assert_eq!(names, ["incr_by", "sum"]);
}

#[tokio::test]
async fn noscript_after_script_flush_is_recovered_for_a_single_call() {
    let q = start().await;
    let registry = ScriptRegistry::new();
    registry.define("incr_by", KeyCount::Fixed(1), INCR_BY).unwrap();
    registry.preload(q.client.redis()).await.unwrap();
    assert_eq!(loaded_flags(&registry, &q).await, [true]);
    q.client.redis().script_flush(false).await.unwrap();
    assert_eq!(loaded_flags(&registry, &q).await, [false]);

    let total: i64 = registry
        .run(q.client.redis(), "incr_by", &["c"], vec![3.into()])
        .await
        .unwrap();
    assert_eq!(total, 3);
    assert_eq!(loaded_flags(&registry, &q).await, [true]);

    // The queue's own scripts recover the same way.
    q.client.redis().script_flush(false).await.unwrap();
    q.queue().enqueue(NewJob::new("k", &1)).await.unwrap();
    assert_eq!(q.queue().stats().await.unwrap().pending, 1);
}

#[tokio::test]
async fn noscript_inside_a_pipeline_is_recovered_with_every_call_run_once() {
    let q = start().await;
    let registry = ScriptRegistry::new();
    registry.define("incr_by", KeyCount::Fixed(1), INCR_BY).unwrap();
    registry.define("echo", KeyCount::Fixed(0), "return ARGV[1]").unwrap();
    registry.preload(q.client.redis()).await.unwrap();
    q.client.redis().script_flush(false).await.unwrap();

    let mut pipeline = registry.pipeline(q.client.redis());
    for i in 1..=3 {
        pipeline.add("incr_by", &["c"], vec![i.into()]).unwrap();
        pipeline
            .add("echo", &[] as &[&str], vec![format!("call {i}").into()])
            .unwrap();
    }
    assert_eq!(pipeline.len(), 6);
    let results: Vec<Value> = pipeline
        .execute()
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(results[0].as_i64(), Some(1));
    assert_eq!(results[2].as_i64(), Some(3));
    assert_eq!(
        results[4].as_i64(),
        Some(6),
        "each increment ran exactly once, in order"
    );
    assert_eq!(results[5].as_str().as_deref(), Some("call 3"));

    // A failing call reports its own error; the others still succeed.
    let mut pipeline = registry.pipeline(q.client.redis());
    pipeline.add("incr_by", &["c"], vec!["not a number".into()]).unwrap();
    pipeline.add("incr_by", &["c"], vec![4.into()]).unwrap();
    let results = pipeline.execute().await.unwrap();
    assert!(results[0].is_err());
    assert_eq!(results[1].as_ref().unwrap().as_i64(), Some(10));
}

#[tokio::test]
async fn the_queue_registers_its_scripts_in_the_public_registry() {
    let q = start().await;
    let mut names: Vec<String> = q.client.scripts().list().iter().map(|s| s.name().to_owned()).collect();
    names.sort();
    let mut expected: Vec<&str> = queue::low_level::Command::ALL.iter().map(|c| c.name()).collect();
    expected.sort();
    assert_eq!(names, expected, "every queue command, and nothing else");
    for command in queue::low_level::Command::ALL {
        let script = q.client.scripts().get(command.name()).unwrap();
        assert_eq!(script.source(), command.source(), "{}", command.name());
        assert_eq!(
            script.keys(),
            KeyCount::Fixed(queue::low_level::QUEUE_KEY_COUNT),
            "{}",
            command.name()
        );
    }
}

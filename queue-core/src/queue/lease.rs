//! The lease calls workers are built on: pop, complete, fail, extend, release, reap.
use std::{collections::HashMap, time::Duration};

use fred::types::Value;

use super::Queue;
use crate::{
    envelope::JobRecord,
    millis,
    request::RequestId,
    scripts::{status, Command, Reply},
    Error, FailOutcome, Leased, Popped, Result,
};

/// One attempt's hold on a job: the job id and the token of the lease it was fetched under
/// ([`Queue::pop`]). Settle calls take it; once the lease is lost (expired and reaped, or the job
/// fetched again), the token no longer matches and the call changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The job id.
    pub id: String,
    /// The lease token: a number, larger for every lease the queue gives out.
    pub token: String,
}

impl Queue {
    /// Leases up to `count` jobs for `lease`, all under one token. Due delayed and retrying
    /// jobs are promoted first.
    pub async fn pop(&self, count: usize, lease: Duration) -> Result<Popped> {
        self.pop_with_request(count, lease, &RequestId::new()).await
    }

    /// [`pop`](Self::pop) as one logical call: after an error whose reply may have been lost
    /// ([`Error::is_transient`]), call again with the same `request` to get the lease the
    /// first delivery took (the jobs it still holds), instead of leasing a second batch and
    /// leaving the first to expire.
    pub async fn pop_with_request(&self, count: usize, lease: Duration, request: &RequestId) -> Result<Popped> {
        let args = vec![
            Value::from(count.max(1) as i64),
            Value::from(millis(lease) as i64),
            Value::from(1_000),
        ];
        let (_, mut r) = self.call(Command::Pop, Some(request), args).await?;
        let now_ms = r.int()?;
        let next_due = r.int()?;
        let paused = r.int()? == 1;
        // One lease covers the whole batch.
        let token = r.string()?;
        let mut jobs = Vec::new();
        let queue: std::sync::Arc<str> = self.name().into();
        while r.has_more() {
            let id = r.string()?;
            let record = JobRecord::new(r.bytes()?);
            let attempt = r.int()? as u32;
            let runnable_at_ms = r
                .string()?
                .parse()
                .ok()
                .or_else(|| record.created_ms())
                .unwrap_or(now_ms);
            jobs.push(Leased {
                lease: Lease {
                    id,
                    token: token.clone(),
                },
                attempt,
                raw_record: record.into_bytes(),
                queue: queue.clone(),
                runnable_at_ms,
                leased_at_ms: now_ms,
            });
        }
        Ok(Popped {
            jobs,
            now_ms,
            next_due_ms: (next_due >= 0).then_some(next_due),
            paused,
        })
    }

    /// Completes leased jobs; for each, in order, whether its token still held the lease (a stale
    /// token changes nothing).
    pub async fn complete<'a>(&self, leases: impl IntoIterator<Item = &'a Lease>) -> Result<Vec<bool>> {
        self.complete_with_results(leases, &[]).await
    }

    /// [`complete`](Self::complete), keeping what handlers returned: `results` pairs a job id of
    /// `leases` with its result as JSON (jobs without a result are left out). A result is kept
    /// with its job, under the completed retention, and only if the job's lease still held.
    pub async fn complete_with_results<'a>(
        &self,
        leases: impl IntoIterator<Item = &'a Lease>,
        results: &[(&str, &[u8])],
    ) -> Result<Vec<bool>> {
        let retention = self.client.config().completed;
        let mut args = vec![
            Value::from(retention.max_count as i64),
            Value::from(millis(retention.max_age) as i64),
            Value::from(results.len() as i64),
        ];
        for (id, result) in results {
            args.push(Value::from(*id));
            args.push(Value::Bytes(result.to_vec().into()));
        }
        let first_lease = args.len();
        let sent = push_leases(&mut args, leases);
        // The leases make the call unique; the results ride along.
        let request = settle_request("complete", &args[first_lease..]);
        let (_, mut r) = self.call(Command::Complete, Some(&request), args).await?;
        held_in_order(&sent, &mut r)
    }

    /// Fails one attempt; the script retries it after its backoff or buries it. `permanent`
    /// sends it to the dead letter at once. Calling again for the same attempt (after an error
    /// that may have lost the reply) changes nothing and answers what the first call did.
    pub async fn fail(&self, lease: &Lease, error: &str, permanent: bool) -> Result<FailOutcome> {
        let Lease { id, token } = lease;
        let dead = self.client.config().dead;
        let args = vec![
            Value::from(id.as_str()),
            Value::from(token.as_str()),
            Value::from(truncate(error, 8 * 1024)),
            Value::from(if permanent { "1" } else { "0" }),
            Value::from(rand::random::<u32>() as i64),
            Value::from(dead.max_count as i64),
            Value::from(millis(dead.max_age) as i64),
        ];
        let request = RequestId::derived(&[b"fail", id.as_bytes(), token.as_bytes()]);
        let (status, mut r) = self.call(Command::Fail, Some(&request), args).await?;
        if status == status::LEASE_LOST {
            return Err(Error::LeaseLost {
                queue: self.name().to_owned(),
                id: id.clone(),
            });
        }
        let outcome = r.string()?;
        let at_ms = r.int()?;
        Ok(if outcome == "dead" {
            FailOutcome::Dead
        } else {
            FailOutcome::Retry {
                at_ms,
                delay_ms: r.int()?,
            }
        })
    }

    /// Renews leases for `lease` from now; for each, whether it was still held. A lease is
    /// shared by the jobs one [`pop`](Self::pop) returned: renewing one job's renews them all.
    pub async fn extend<'a>(&self, lease: Duration, leases: impl IntoIterator<Item = &'a Lease>) -> Result<Vec<bool>> {
        let mut args = vec![Value::from(millis(lease) as i64)];
        let sent = push_leases(&mut args, leases);
        let (_, mut r) = self.call(Command::Extend, None, args).await?;
        let _deadline = r.int()?;
        held_in_order(&sent, &mut r)
    }

    /// Records how far a running attempt got (any JSON value), shown by `job` and as a
    /// `progress` event. Only the attempt holding `lease` can write; a stale one gets
    /// [`Error::LeaseLost`].
    pub async fn progress(&self, lease: &Lease, progress: &serde_json::Value) -> Result<()> {
        let value = serde_json::to_vec(progress).map_err(|e| Error::InvalidPayload(e.to_string()))?;
        let limit = self.client.config().max_payload_bytes;
        if value.len() > limit {
            return Err(Error::PayloadTooLarge {
                size: value.len(),
                limit,
            });
        }
        let args = vec![
            Value::from(lease.id.as_str()),
            Value::from(lease.token.as_str()),
            Value::Bytes(value.into()),
        ];
        let (status, _) = self.call(Command::Progress, Some(&RequestId::new()), args).await?;
        if status == status::LEASE_LOST {
            return Err(Error::LeaseLost {
                queue: self.name().to_owned(),
                id: lease.id.clone(),
            });
        }
        Ok(())
    }

    /// Hands leased jobs back to pending without counting the attempt; for each, whether it
    /// was still held.
    pub async fn release<'a>(&self, leases: impl IntoIterator<Item = &'a Lease>) -> Result<Vec<bool>> {
        let mut args = Vec::new();
        let sent = push_leases(&mut args, leases);
        let request = settle_request("release", &args);
        let (_, mut r) = self.call(Command::Release, Some(&request), args).await?;
        held_in_order(&sent, &mut r)
    }

    /// Takes back the jobs of expired leases, unless another caller swept within `interval`,
    /// and trims the completed and dead jobs past their retention (so its bounds hold on a
    /// queue where nothing finishes). Each script call handles at most `limit` jobs (bounding
    /// how long it blocks Redis and how many records it reads); the sweep goes on call after
    /// call until none are left. Returns `(requeued, buried)`, or `None` when skipped.
    pub async fn reap(&self, interval: Duration, limit: usize) -> Result<Option<(u64, u64)>> {
        let sweep = self.sweep(interval, limit).await?;
        Ok(sweep.swept.then_some((sweep.requeued, sweep.buried)))
    }

    /// [`Queue::reap`], answering also when the queue next needs a sweep, so that a worker
    /// sweeps each of its queues only when a lease can have expired there.
    pub async fn sweep(&self, interval: Duration, limit: usize) -> Result<Sweep> {
        let (dead, completed) = (self.client.config().dead, self.client.config().completed);
        let args = |continuing: bool| {
            vec![
                Value::from(millis(interval).max(1) as i64),
                Value::from(limit.max(1) as i64),
                Value::from(if continuing { "1" } else { "0" }),
                Value::from(dead.max_count as i64),
                Value::from(millis(dead.max_age) as i64),
                Value::from(completed.max_count as i64),
                Value::from(millis(completed.max_age) as i64),
            ]
        };
        let next_in = |ms: i64| (ms >= 0).then(|| Duration::from_millis(ms as u64));
        let mut sweep = Sweep {
            swept: true,
            requeued: 0,
            buried: 0,
            next_in: None,
        };
        let (status, mut r) = self.call(Command::Reap, Some(&RequestId::new()), args(false)).await?;
        if status == status::SKIPPED {
            sweep.swept = false;
            sweep.next_in = next_in(r.int()?);
            return Ok(sweep);
        }
        // Each call handles at most `limit` jobs; the script says when more are left.
        loop {
            sweep.requeued += r.int()? as u64;
            sweep.buried += r.int()? as u64;
            let more = r.int()? != 0;
            sweep.next_in = next_in(r.int()?);
            if !more {
                return Ok(sweep);
            }
            (_, r) = self.call(Command::Reap, Some(&RequestId::new()), args(true)).await?;
        }
    }
}

/// What one [`Queue::sweep`] did, and when the queue next needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sweep {
    /// Whether this call swept (`false`: another caller swept within the interval).
    pub swept: bool,
    /// Jobs of expired leases handed back to pending.
    pub requeued: u64,
    /// Jobs of expired leases sent to the dead letter.
    pub buried: u64,
    /// When the queue next needs a sweep: its first lease expires, its pending or due jobs
    /// may be leased, or a retention age runs out, and not before the interval lets another
    /// sweep in. `None`: not until a job becomes ready there, which wakes the workers.
    pub next_in: Option<Duration>,
}

/// Adds leases to `args` as the settle scripts take them: runs of `token, n, n ids` (the jobs of
/// one fetched batch share a token). Returns, for each id in the order sent, its index in
/// `leases`, to put the per-job answers back in the caller's order.
fn push_leases<'a>(args: &mut Vec<Value>, leases: impl IntoIterator<Item = &'a Lease>) -> Vec<usize> {
    let leases: Vec<&Lease> = leases.into_iter().collect();
    let mut by_token: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for (index, Lease { token, .. }) in leases.iter().enumerate() {
        let at = *position.entry(token).or_insert_with(|| {
            by_token.push((token, Vec::new()));
            by_token.len() - 1
        });
        by_token[at].1.push(index);
    }
    let mut sent = Vec::with_capacity(leases.len());
    for (token, indices) in by_token {
        args.push(Value::from(token));
        args.push(Value::from(indices.len() as i64));
        for &index in &indices {
            args.push(Value::from(leases[index].id.as_str()));
        }
        sent.extend(indices);
    }
    sent
}

/// The request id of a settle call (complete, release): its leases (`token, n, ids` runs, as
/// sent) are unique to it, so every retry of the same call derives the same id.
fn settle_request(command: &str, leases: &[Value]) -> RequestId {
    // Every argument counts, the run lengths included, so two groupings of the same ids differ.
    let text: Vec<std::borrow::Cow<'_, [u8]>> = leases
        .iter()
        .map(|value| match value {
            Value::Integer(n) => n.to_string().into_bytes().into(),
            other => other.as_bytes().unwrap_or_default().into(),
        })
        .collect();
    let mut parts: Vec<&[u8]> = vec![command.as_bytes()];
    parts.extend(text.iter().map(|part| part.as_ref()));
    RequestId::derived(&parts)
}

/// Per-job statuses read in the order sent, as "held" flags in the caller's order.
fn held_in_order(sent: &[usize], reply: &mut Reply) -> Result<Vec<bool>> {
    let mut held = vec![false; sent.len()];
    for &index in sent {
        held[index] = reply.int()? == status::OK;
    }
    Ok(held)
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use fred::types::Value;

    use super::{push_leases, Lease};

    fn leases(pairs: &[(&str, &str)]) -> Vec<Lease> {
        pairs
            .iter()
            .map(|(id, token)| Lease {
                id: id.to_string(),
                token: token.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_settle_call_is_recognised_by_its_leases_and_their_grouping() {
        let args = |pairs: &[(&str, &str)]| {
            let mut args = Vec::new();
            push_leases(&mut args, &leases(pairs));
            args
        };
        let one = args(&[("a", "7"), ("b", "7")]);
        assert_eq!(
            super::settle_request("complete", &one),
            super::settle_request("complete", &one)
        );
        assert_ne!(
            super::settle_request("complete", &one),
            super::settle_request("release", &one)
        );
        // The same bytes in other runs: token 7 with ids a and 8, or token 7 with a, then token 8.
        let joined = vec![Value::from("7"), Value::from(2), Value::from("a"), Value::from("8")];
        let split = vec![Value::from("7"), Value::from(1), Value::from("a"), Value::from("8")];
        assert_ne!(
            super::settle_request("complete", &joined),
            super::settle_request("complete", &split)
        );
    }

    #[test]
    fn leases_go_as_runs_per_token_and_answers_map_back_to_the_callers_order() {
        let leases = leases(&[("a", "t1"), ("b", "t2"), ("c", "t1")]);
        let mut args = Vec::new();
        let sent = push_leases(&mut args, &leases);
        let text: Vec<String> = args
            .iter()
            .map(|v| v.as_string().unwrap_or_else(|| format!("{v:?}")))
            .collect();
        assert_eq!(text, ["t1", "2", "a", "c", "t2", "1", "b"]);
        // The script answers in the order sent: a, c, b.
        assert_eq!(sent, [0, 2, 1]);
        assert!(matches!(args[1], Value::Integer(2)));
    }
}

//! The lease calls workers are built on: pop, complete, fail, extend, release, reap.
use std::{collections::HashMap, time::Duration};

use fred::types::Value;

use super::QueueClient;
use crate::{
    envelope::JobRecord,
    millis,
    request::RequestId,
    scripts::{status, Command, Reply},
    Error, FailOutcome, Leased, Popped, Result,
};

impl QueueClient {
    /// Leases up to `count` jobs for `lease`, all under one token. Due delayed and retrying
    /// jobs are promoted first.
    pub async fn pop(&self, queue: &str, count: usize, lease: Duration) -> Result<Popped> {
        self.pop_with_request(queue, count, lease, &RequestId::new()).await
    }

    /// [`pop`](Self::pop) as one logical call: after an error whose reply may have been lost
    /// ([`Error::is_transient`]), call again with the same `request` to get the lease the
    /// first delivery took (the jobs it still holds), instead of leasing a second batch and
    /// leaving the first to expire.
    pub async fn pop_with_request(
        &self,
        queue: &str,
        count: usize,
        lease: Duration,
        request: &RequestId,
    ) -> Result<Popped> {
        let keys = self.keys(queue)?;
        let args = vec![
            Value::from(count.max(1) as i64),
            Value::from(millis(lease) as i64),
            Value::from(1_000),
        ];
        let (_, mut r) = self.call(Command::Pop, &keys, Some(request), args).await?;
        let now_ms = r.int()?;
        let next_due = r.int()?;
        let paused = r.int()? == 1;
        // One lease covers the whole batch.
        let token = r.string()?;
        let mut jobs = Vec::new();
        while r.has_more() {
            let id = r.string()?;
            let raw_envelope = JobRecord::new(r.bytes()?).into_envelope();
            let attempt = r.int()? as u32;
            jobs.push(Leased {
                id,
                attempt,
                token: token.clone(),
                raw_envelope,
            });
        }
        Ok(Popped {
            jobs,
            now_ms,
            next_due_ms: (next_due >= 0).then_some(next_due),
            paused,
        })
    }

    /// Completes leased jobs; for each, whether its token still held the lease (a stale token
    /// changes nothing).
    pub async fn complete(&self, queue: &str, leases: &[(&str, &str)]) -> Result<Vec<bool>> {
        self.complete_with_results(queue, leases, &[]).await
    }

    /// [`complete`](Self::complete), keeping what handlers returned: `results` pairs a job id of
    /// `leases` with its result as JSON (jobs without a result are left out). A result is kept
    /// with its job, under the completed retention, and only if the job's lease still held.
    pub async fn complete_with_results(
        &self,
        queue: &str,
        leases: &[(&str, &str)],
        results: &[(&str, &[u8])],
    ) -> Result<Vec<bool>> {
        let keys = self.keys(queue)?;
        let retention = self.config.completed;
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
        let (_, mut r) = self.call(Command::Complete, &keys, Some(&request), args).await?;
        held_in_order(&sent, &mut r)
    }

    /// Fails one attempt; the script retries it after its backoff or buries it. `permanent`
    /// sends it to the dead letter at once. Calling again for the same attempt (after an error
    /// that may have lost the reply) changes nothing and answers what the first call did.
    pub async fn fail(&self, queue: &str, id: &str, token: &str, error: &str, permanent: bool) -> Result<FailOutcome> {
        let keys = self.keys(queue)?;
        let dead = self.config.dead;
        let args = vec![
            Value::from(id),
            Value::from(token),
            Value::from(truncate(error, 8 * 1024)),
            Value::from(if permanent { "1" } else { "0" }),
            Value::from(rand::random::<u32>() as i64),
            Value::from(dead.max_count as i64),
            Value::from(millis(dead.max_age) as i64),
        ];
        let request = RequestId::derived(&[b"fail", id.as_bytes(), token.as_bytes()]);
        let (status, mut r) = self.call(Command::Fail, &keys, Some(&request), args).await?;
        if status == status::LEASE_LOST {
            return Err(Error::LeaseLost {
                queue: queue.to_owned(),
                id: id.to_owned(),
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
    pub async fn extend(&self, queue: &str, lease: Duration, leases: &[(&str, &str)]) -> Result<Vec<bool>> {
        let keys = self.keys(queue)?;
        let mut args = vec![Value::from(millis(lease) as i64)];
        let sent = push_leases(&mut args, leases);
        let (_, mut r) = self.call(Command::Extend, &keys, None, args).await?;
        let _deadline = r.int()?;
        held_in_order(&sent, &mut r)
    }

    /// Records how far a running attempt got (any JSON value), shown by `job` and as a
    /// `progress` event. Only the attempt holding the lease `token` can write; a stale one gets
    /// [`Error::LeaseLost`].
    pub async fn progress(&self, queue: &str, id: &str, token: &str, progress: &serde_json::Value) -> Result<()> {
        let keys = self.keys(queue)?;
        let value = serde_json::to_vec(progress).map_err(|e| Error::InvalidPayload(e.to_string()))?;
        if value.len() > self.config.max_payload_bytes {
            return Err(Error::PayloadTooLarge {
                size: value.len(),
                limit: self.config.max_payload_bytes,
            });
        }
        let args = vec![Value::from(id), Value::from(token), Value::Bytes(value.into())];
        let (status, _) = self
            .call(Command::Progress, &keys, Some(&RequestId::new()), args)
            .await?;
        if status == status::LEASE_LOST {
            return Err(Error::LeaseLost {
                queue: queue.to_owned(),
                id: id.to_owned(),
            });
        }
        Ok(())
    }

    /// Hands leased jobs back to pending without counting the attempt; for each, whether it
    /// was still held.
    pub async fn release(&self, queue: &str, leases: &[(&str, &str)]) -> Result<Vec<bool>> {
        let keys = self.keys(queue)?;
        let mut args = Vec::new();
        let sent = push_leases(&mut args, leases);
        let request = settle_request("release", &args);
        let (_, mut r) = self.call(Command::Release, &keys, Some(&request), args).await?;
        held_in_order(&sent, &mut r)
    }

    /// Takes back the jobs of expired leases, unless another caller swept within `interval`,
    /// and trims the completed and dead jobs past their retention (so its bounds hold on a
    /// queue where nothing finishes). Each script call handles at most `limit` jobs (bounding
    /// how long it blocks Redis and how many records it reads); the sweep goes on call after
    /// call until none are left. Returns `(requeued, buried)`, or `None` when skipped.
    pub async fn reap(&self, queue: &str, interval: Duration, limit: usize) -> Result<Option<(u64, u64)>> {
        let keys = self.keys(queue)?;
        let (dead, completed) = (self.config.dead, self.config.completed);
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
        let (mut requeued, mut buried) = (0, 0);
        let (status, mut r) = self
            .call(Command::Reap, &keys, Some(&RequestId::new()), args(false))
            .await?;
        if status == status::SKIPPED {
            return Ok(None);
        }
        // Each call handles at most `limit` jobs; the script says when more are left.
        loop {
            requeued += r.int()? as u64;
            buried += r.int()? as u64;
            if r.int()? == 0 {
                return Ok(Some((requeued, buried)));
            }
            (_, r) = self
                .call(Command::Reap, &keys, Some(&RequestId::new()), args(true))
                .await?;
        }
    }
}

/// Adds `(id, token)` leases to `args` as the settle scripts take them: runs of `token, n, n ids`
/// (the jobs of one fetched batch share a token). Returns, for each id in the order sent, its
/// index in `leases`, to put the per-job answers back in the caller's order.
fn push_leases(args: &mut Vec<Value>, leases: &[(&str, &str)]) -> Vec<usize> {
    let mut by_token: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for (index, (_, token)) in leases.iter().enumerate() {
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
            args.push(Value::from(leases[index].0));
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

    use super::push_leases;

    #[test]
    fn a_settle_call_is_recognised_by_its_leases_and_their_grouping() {
        let args = |leases: &[(&str, &str)]| {
            let mut args = Vec::new();
            push_leases(&mut args, leases);
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
        let leases = [("a", "t1"), ("b", "t2"), ("c", "t1")];
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

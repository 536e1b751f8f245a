//! Listing the jobs of one state, a page at a time (`lua/jobs.lua`): what `queue-cli jobs` and
//! a dashboard show.
use fred::types::Value;
use serde::{Deserialize, Serialize};

use super::Queue;
use crate::{scripts::Command, JobState, Result};

/// The most jobs one page holds ([`Queue::jobs`] takes a larger limit as this): one script
/// call reads every job of its page, so this bounds how long it blocks Redis.
pub const MAX_JOBS_PAGE: u64 = 1_000;

/// One job as a list shows it: what it is, how far it got, and the times of its state.
/// Serialised as the objects of `queue-cli jobs --json` (see the README): times are Unix ms,
/// absent values are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// The job id.
    pub id: String,
    /// Its kind; empty when its record does not decode (a worker would send it to the dead
    /// letter with the reason).
    pub kind: String,
    /// The state it was listed in.
    pub state: JobState,
    /// Higher runs first.
    pub priority: i32,
    /// Attempts started so far (the running one included).
    pub attempts: u32,
    /// Attempts it has before the dead letter.
    pub max_attempts: u32,
    /// When it was enqueued (server time).
    pub created_at_ms: i64,
    /// When it became runnable (pending, and the last time for the other states), or becomes
    /// runnable (scheduled, retrying).
    pub run_at_ms: Option<i64>,
    /// The deadline of its lease (active only): a worker that does not renew it by then loses
    /// the job to the reaper.
    pub lease_expires_at_ms: Option<i64>,
    /// When it finished (dead and completed only).
    pub finished_at_ms: Option<i64>,
    /// The error of its last failed attempt, if any.
    pub error: Option<String>,
}

/// One page of the jobs in a state, in the order they are served (pending: the order workers
/// take them; scheduled and retrying: soonest first; active: by lease deadline) or happened
/// (dead and completed: most recent first). The object `queue-cli jobs --json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPage {
    /// The queue.
    pub queue: String,
    /// The state listed.
    pub state: JobState,
    /// How many jobs are in this state in all.
    pub total: u64,
    /// How many jobs of the state come before this page.
    pub offset: u64,
    /// The page size asked for (at most [`MAX_JOBS_PAGE`]).
    pub limit: u64,
    /// This page: at most `limit` jobs.
    pub jobs: Vec<JobSummary>,
}

impl Queue {
    /// A page of the jobs of this queue in `state`: `limit` jobs (1 to [`MAX_JOBS_PAGE`];
    /// others are taken as the nearest) after the first `offset`. Payloads stay out;
    /// [`job`](Self::job) shows one job whole. A job that changes state between two pages can
    /// be missed or shown twice, as in any list of a queue that moves.
    pub async fn jobs(&self, state: JobState, offset: u64, limit: u64) -> Result<JobPage> {
        self.existing().await?;
        let limit = limit.clamp(1, MAX_JOBS_PAGE);
        let offset = offset.min(i64::MAX as u64);
        let args = vec![
            Value::from(state.as_str()),
            Value::from(offset as i64),
            Value::from(limit as i64),
        ];
        let (_, mut r) = self.call(Command::Jobs, None, args).await?;
        let total = r.int()?.max(0) as u64;
        let mut jobs = Vec::new();
        while r.has_more() {
            let id = r.string()?;
            let kind = r.string()?;
            let priority = r.int()? as i32;
            let max_attempts = r.int()?.max(0) as u32;
            let created_at_ms = r.string()?.parse().unwrap_or(0);
            let attempts = r.int()?.max(0) as u32;
            let error = Some(r.string()?).filter(|e| !e.is_empty());
            let run_at_ms = r.string()?.parse().ok();
            let at_ms: Option<i64> = r.string()?.parse().ok();
            let (lease_expires_at_ms, finished_at_ms) = match state {
                JobState::Active => (at_ms, None),
                JobState::Dead | JobState::Completed | JobState::Cancelled => (None, at_ms),
                JobState::Pending | JobState::Scheduled | JobState::Retrying => (None, None),
            };
            jobs.push(JobSummary {
                id,
                kind,
                state,
                priority,
                attempts,
                max_attempts,
                created_at_ms,
                // A scheduled or retrying job's own time is when it is due.
                run_at_ms: match state {
                    JobState::Scheduled | JobState::Retrying => at_ms.or(run_at_ms),
                    _ => run_at_ms,
                },
                lease_expires_at_ms,
                finished_at_ms,
                error,
            });
        }
        Ok(JobPage {
            queue: self.name().to_owned(),
            state,
            total,
            offset,
            limit,
            jobs,
        })
    }
}

//! A queue's busiest groups (`lua/groups.lua`).
use fred::types::Value;
use serde::Serialize;

use super::Queue;
use crate::{scripts::Command, Error, Result};

/// The busiest groups of a queue, as [`Queue::groups`] reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupsReport {
    /// Groups with ready jobs (in line for a turn, or parked at a group limit).
    pub waiting: u64,
    /// Groups with running jobs.
    pub running: u64,
    /// The busiest groups, most ready + running jobs first. On a queue with more than 1,000
    /// groups waiting, they are the busiest of a sample of 1,000.
    pub groups: Vec<GroupLoad>,
}

/// One group's jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupLoad {
    /// The group's name.
    pub name: String,
    /// Jobs ready to run.
    pub pending: u64,
    /// Jobs running.
    pub active: u64,
    /// The group's weight (1 unless set with [`Queue::set_group_weight`]).
    pub weight: u32,
    /// `ready` (in line for a turn), `limited` (held at a group limit) or `running` (nothing
    /// ready).
    pub state: String,
}

impl Queue {
    /// Up to `limit` (1 to 1,000) of the queue's busiest groups.
    pub async fn groups(&self, limit: u32) -> Result<GroupsReport> {
        if !(1..=1000).contains(&limit) {
            return Err(Error::InvalidLimit(format!("list 1 to 1000 groups, not {limit}")));
        }
        self.existing().await?;
        let (_, mut r) = self.call(Command::Groups, None, vec![Value::from(limit)]).await?;
        let waiting = r.int()?.max(0) as u64;
        let running = r.int()?.max(0) as u64;
        let mut groups = Vec::new();
        while r.has_more() {
            let name = r.string()?;
            let pending = r.int()?.max(0) as u64;
            let active = r.int()?.max(0) as u64;
            let weight = r.string()?.parse().unwrap_or(1);
            let state = r.string()?;
            groups.push(GroupLoad {
                name,
                pending,
                active,
                weight,
                state,
            });
        }
        Ok(GroupsReport {
            waiting,
            running,
            groups,
        })
    }
}

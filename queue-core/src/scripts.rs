//! The queue's own scripts (`lua/`, one file per command), registered under `queue.<name>`.
use fred::types::Value;

use crate::{registry::KeyCount, Error, Result, ScriptRegistry};

/// Every queue script takes the 28 keys of [`QueueKeys`](crate::QueueKeys), and a request id
/// as its first argument (see [`RequestId`](crate::RequestId)).
pub const QUEUE_KEY_COUNT: usize = 35;

macro_rules! script_source {
    ($file:literal) => {
        concat!(
            include_str!("../../lua/prelude.lua"),
            "\n",
            include_str!(concat!("../../lua/", $file))
        )
    };
}

/// The queue's commands, each one Lua script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Enqueue a bulk of jobs, all or none.
    Push,
    /// Lease up to N jobs.
    Pop,
    /// Finish leased jobs.
    Complete,
    /// Fail an attempt: retry or dead letter.
    Fail,
    /// Renew many leases.
    Extend,
    /// Requeue or bury jobs whose lease expired.
    Reap,
    /// Hand leased jobs back without counting the attempt.
    Release,
    /// Counts of one queue.
    Stats,
    /// One job's state and record.
    Job,
    /// Stop leasing.
    Pause,
    /// Resume leasing.
    Resume,
    /// List dead jobs.
    DeadList,
    /// Move dead jobs back to pending.
    DeadReplay,
    /// Forget dead jobs.
    DeadPurge,
    /// Whether a job finished; if not, mark it as waited for.
    Wait,
    /// Remove a waiting job, or stop a running one.
    Cancel,
    /// Record a running attempt's progress.
    Progress,
    /// Turn the queue's event stream on or off.
    Events,
    /// A page of the jobs in one state.
    Jobs,
    /// Remove one waiting or finished job.
    Delete,
    /// Run a scheduled or retrying job now.
    Retry,
    /// Remove a batch of waiting jobs.
    Drain,
    /// Remove a batch of the queue's jobs and, once none is left, its keys.
    Obliterate,
    /// Read or change the queue's rate and concurrency limits.
    Limits,
    /// Add or replace a named schedule.
    CronAdd,
    /// Remove a named schedule.
    CronRemove,
    /// List the schedules, with the server's time.
    CronList,
    /// Enqueue a schedule's due tick, once.
    CronFire,
    /// The busiest groups.
    Groups,
}

impl Command {
    /// All commands.
    pub const ALL: [Command; 29] = [
        Command::Push,
        Command::Pop,
        Command::Complete,
        Command::Fail,
        Command::Extend,
        Command::Reap,
        Command::Release,
        Command::Stats,
        Command::Job,
        Command::Pause,
        Command::Resume,
        Command::DeadList,
        Command::DeadReplay,
        Command::DeadPurge,
        Command::Wait,
        Command::Cancel,
        Command::Progress,
        Command::Events,
        Command::Jobs,
        Command::Delete,
        Command::Retry,
        Command::Drain,
        Command::Obliterate,
        Command::Limits,
        Command::CronAdd,
        Command::CronRemove,
        Command::CronList,
        Command::CronFire,
        Command::Groups,
    ];

    /// The registry name.
    pub fn name(self) -> &'static str {
        match self {
            Command::Push => "queue.push",
            Command::Pop => "queue.pop",
            Command::Complete => "queue.complete",
            Command::Fail => "queue.fail",
            Command::Extend => "queue.extend",
            Command::Reap => "queue.reap",
            Command::Release => "queue.release",
            Command::Stats => "queue.stats",
            Command::Job => "queue.job",
            Command::Pause => "queue.pause",
            Command::Resume => "queue.resume",
            Command::DeadList => "queue.dead_list",
            Command::DeadReplay => "queue.dead_replay",
            Command::DeadPurge => "queue.dead_purge",
            Command::Wait => "queue.wait",
            Command::Cancel => "queue.cancel",
            Command::Progress => "queue.progress",
            Command::Events => "queue.events",
            Command::Jobs => "queue.jobs",
            Command::Delete => "queue.delete",
            Command::Retry => "queue.retry",
            Command::Drain => "queue.drain",
            Command::Obliterate => "queue.obliterate",
            Command::Limits => "queue.limits",
            Command::CronAdd => "queue.cron_add",
            Command::CronRemove => "queue.cron_remove",
            Command::CronList => "queue.cron_list",
            Command::CronFire => "queue.cron_fire",
            Command::Groups => "queue.groups",
        }
    }

    /// The Lua source (the shared prelude followed by the command's file).
    pub fn source(self) -> &'static str {
        match self {
            Command::Push => script_source!("push.lua"),
            // The queue's rate limit is the script library's sliding window: the same code.
            Command::Pop => concat!(
                include_str!("../../lua/prelude.lua"),
                "\n",
                include_str!("../../lua/lib/sliding_window.lua"),
                "\n",
                include_str!("../../lua/lib/fair_share.lua"),
                "\n",
                include_str!("../../lua/pop.lua")
            ),
            Command::Complete => script_source!("complete.lua"),
            Command::Fail => script_source!("fail.lua"),
            Command::Extend => script_source!("extend.lua"),
            Command::Reap => script_source!("reap.lua"),
            Command::Release => script_source!("release.lua"),
            Command::Stats => script_source!("stats.lua"),
            Command::Job => script_source!("job.lua"),
            Command::Pause => script_source!("pause.lua"),
            Command::Resume => script_source!("resume.lua"),
            Command::DeadList => script_source!("dead_list.lua"),
            Command::DeadReplay => script_source!("dead_replay.lua"),
            Command::DeadPurge => script_source!("dead_purge.lua"),
            Command::Wait => script_source!("wait.lua"),
            Command::Cancel => script_source!("cancel.lua"),
            Command::Progress => script_source!("progress.lua"),
            Command::Events => script_source!("events.lua"),
            Command::Jobs => script_source!("jobs.lua"),
            Command::Delete => script_source!("delete.lua"),
            Command::Retry => script_source!("retry.lua"),
            Command::Drain => script_source!("drain.lua"),
            Command::Obliterate => script_source!("obliterate.lua"),
            Command::Limits => script_source!("limits.lua"),
            Command::CronAdd => script_source!("cron_add.lua"),
            Command::CronRemove => script_source!("cron_remove.lua"),
            Command::CronList => script_source!("cron_list.lua"),
            Command::CronFire => script_source!("cron_fire.lua"),
            Command::Groups => script_source!("groups.lua"),
        }
    }
}

/// Registers every queue command in `registry`.
pub fn register(registry: &ScriptRegistry) -> Result<()> {
    for command in Command::ALL {
        registry.define(command.name(), KeyCount::Fixed(QUEUE_KEY_COUNT), command.source())?;
    }
    Ok(())
}

/// Status codes, the first element of every queue script's reply (see `lua/prelude.lua`).
pub(crate) mod status {
    pub const OK: i64 = 0;
    pub const BAD_ARGUMENT: i64 = 1;
    pub const NOT_FOUND: i64 = 2;
    pub const LEASE_LOST: i64 = 3;
    pub const SKIPPED: i64 = 4;
}

/// Reads a script's reply array element by element, naming the script in every error.
pub(crate) struct Reply {
    script: &'static str,
    items: std::vec::IntoIter<Value>,
}

impl Reply {
    /// Splits the reply and reads its status; BAD_ARGUMENT becomes [`Error::ScriptRejected`].
    pub(crate) fn new(command: Command, value: Value) -> Result<(i64, Reply)> {
        let Value::Array(items) = value else {
            return Err(Error::UnexpectedReply {
                script: command.name().into(),
                detail: format!("not an array: {value:?}"),
            });
        };
        let mut reply = Reply {
            script: command.name(),
            items: items.into_iter(),
        };
        let status = reply.int()?;
        if status == status::BAD_ARGUMENT {
            let message = reply.string().unwrap_or_default();
            return Err(Error::ScriptRejected {
                script: command.name().into(),
                message,
            });
        }
        Ok((status, reply))
    }

    fn unexpected(&self, detail: String) -> Error {
        Error::UnexpectedReply {
            script: self.script.into(),
            detail,
        }
    }

    fn next(&mut self) -> Result<Value> {
        self.items
            .next()
            .ok_or_else(|| self.unexpected("reply is shorter than expected".into()))
    }

    pub(crate) fn has_more(&self) -> bool {
        self.items.len() > 0
    }

    pub(crate) fn int(&mut self) -> Result<i64> {
        match self.next()? {
            Value::Integer(i) => Ok(i),
            other => other
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| self.unexpected(format!("expected an integer, got {other:?}"))),
        }
    }

    /// An integer, or else a string (a reply whose element is one or the other).
    pub(crate) fn int_or_string(&mut self) -> Result<std::result::Result<i64, String>> {
        match self.next()? {
            Value::Integer(i) => Ok(Ok(i)),
            other => match other.as_str() {
                Some(text) => Ok(Err(text.into_owned())),
                None => Err(self.unexpected(format!("expected an integer or a string, got {other:?}"))),
            },
        }
    }

    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>> {
        match self.next()? {
            Value::Null => Ok(Vec::new()),
            Value::Integer(i) => Ok(i.to_string().into_bytes()),
            other => other
                .as_bytes()
                .map(<[u8]>::to_vec)
                .ok_or_else(|| self.unexpected(format!("expected a string, got {other:?}"))),
        }
    }

    pub(crate) fn string(&mut self) -> Result<String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes).map_err(|e| self.unexpected(format!("not UTF-8: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::status;
    use crate::keys::SUFFIXES;

    const PRELUDE: &str = include_str!("../../lua/prelude.lua");

    /// `local NAME = VALUE` in the prelude, with any alignment.
    fn lua_local(name: &str) -> Option<&str> {
        PRELUDE.lines().find_map(|line| {
            let rest = line.strip_prefix("local ")?.trim_start().strip_prefix(name)?;
            let value = rest.trim_start().strip_prefix('=')?;
            Some(value.split("--").next().unwrap_or(value).trim())
        })
    }

    #[test]
    fn the_prelude_names_the_keys_in_the_order_rust_sends_them() {
        for (i, suffix) in SUFFIXES.iter().enumerate() {
            let name = format!("K_{}", suffix.to_uppercase().replace(':', "_"));
            assert_eq!(lua_local(&name), Some(format!("KEYS[{}]", i + 1).as_str()), "{name}");
        }
        assert_eq!(
            PRELUDE.matches("= KEYS[").count(),
            SUFFIXES.len(),
            "no key beyond the table"
        );
        assert_eq!(super::QUEUE_KEY_COUNT, SUFFIXES.len());
    }

    #[test]
    fn the_prelude_uses_the_status_codes_rust_reads() {
        for (name, code) in [
            ("OK", status::OK),
            ("BAD_ARGUMENT", status::BAD_ARGUMENT),
            ("NOT_FOUND", status::NOT_FOUND),
            ("LEASE_LOST", status::LEASE_LOST),
            ("SKIPPED", status::SKIPPED),
        ] {
            assert_eq!(lua_local(name), Some(code.to_string().as_str()), "{name}");
        }
        let bulk = crate::MAX_BULK_JOBS.to_string();
        assert_eq!(lua_local("BULK_LIMIT"), Some(bulk.as_str()));
    }
}

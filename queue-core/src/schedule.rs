//! Schedules: when a named schedule of a queue is due ([`ScheduleSpec`]), and what it enqueues
//! each time ([`Schedule`]). The workers fire due ticks through `lua/cron_fire.lua`, which
//! enqueues one job per tick however many workers try (see `queue/cron.rs`).
use std::{str::FromStr, time::Duration};

use croner::{parser::CronParser, parser::Seconds, parser::Year, Cron};
use jiff02::{tz::TimeZone, Timestamp, Zoned};
use serde::{Deserialize, Serialize};

use crate::{envelope::Backoff, keys::validate_name, millis, Error, NewJob, Result};

/// The longest schedule name, in bytes: a tick's job id is `cron:<name>:<tick ms>`, and job ids
/// stop at 128 bytes.
pub const MAX_SCHEDULE_NAME_LEN: usize = 100;

/// The shortest interval of an `@every` schedule.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// When a schedule is due: a cron expression in a time zone, or a fixed interval.
///
/// ```
/// use queue_core::ScheduleSpec;
/// let weekdays = ScheduleSpec::parse("0 9 * * 1-5", Some("Europe/Paris")).unwrap();
/// let every = ScheduleSpec::parse("@every 10s", None).unwrap();
/// // 2026-11-23 (a Monday) 07:00 UTC is 08:00 in Paris: next is 09:00 Paris, 08:00 UTC.
/// let monday_7_utc = 1_795_417_200_000;
/// assert_eq!(weekdays.next_after(monday_7_utc, monday_7_utc).unwrap(), monday_7_utc + 3_600_000);
/// assert_eq!(every.next_after(monday_7_utc, monday_7_utc).unwrap(), monday_7_utc + 10_000);
/// assert!(ScheduleSpec::parse("0 25 * * *", None).unwrap_err().to_string().contains("0 25 * * *"));
/// ```
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    expression: String,
    zone_name: String,
    when: When,
}

#[derive(Debug, Clone)]
enum When {
    Cron(Box<Cron>, TimeZone),
    Every(Duration),
}

impl ScheduleSpec {
    /// Parses a cron expression (5 fields, or 6 with seconds first; `@hourly`, `@daily`,
    /// `@weekly`, `@monthly`, `@yearly`) read in `zone` (an IANA name such as `Europe/Paris`;
    /// default UTC), or an interval `@every <duration>` (e.g. `@every 10s`, at least 1 s; the
    /// zone does not matter to it). The error names what is wrong.
    pub fn parse(expression: &str, zone: Option<&str>) -> Result<Self> {
        let zone_name = zone.unwrap_or("UTC").to_owned();
        let time_zone = TimeZone::get(&zone_name).map_err(|error| Error::InvalidTimeZone {
            zone: zone_name.clone(),
            reason: error.to_string(),
        })?;
        let invalid = |reason: String| Error::InvalidSchedule {
            expression: expression.to_owned(),
            reason,
        };
        let trimmed = expression.trim();
        let when = if let Some(interval) = trimmed.strip_prefix("@every") {
            let interval = humantime::parse_duration(interval.trim())
                .map_err(|error| invalid(format!("{error} (e.g. @every 10s, @every 5m)")))?;
            if interval < MIN_INTERVAL {
                return Err(invalid("an interval is at least 1s".into()));
            }
            When::Every(interval)
        } else {
            let fields = trimmed.split_whitespace().count();
            if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
                return Err(invalid(format!(
                    "expected 5 fields (minute hour day month weekday) or 6 (seconds first), got {fields}"
                )));
            }
            let parser = CronParser::builder()
                .seconds(Seconds::Optional)
                .year(Year::Disallowed)
                .build();
            let cron = parser
                .parse(trimmed)
                .map_err(|error| invalid(naming_the_field(&parser, trimmed, error)))?;
            When::Cron(Box::new(cron), time_zone)
        };
        Ok(ScheduleSpec {
            expression: trimmed.to_owned(),
            zone_name,
            when,
        })
    }

    /// The expression as given (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's name (`UTC` unless one was given).
    pub fn time_zone(&self) -> &str {
        &self.zone_name
    }

    /// The first tick strictly after `now_ms` (Unix ms). Ticks of an interval are counted from
    /// `previous_ms`, the tick before (or the time the schedule was added), so they keep their
    /// rhythm; a cron tick is the expression's next match in its zone. Ticks missed while no
    /// worker ran are skipped: a late fire enqueues one job for all of them.
    pub fn next_after(&self, previous_ms: i64, now_ms: i64) -> Result<i64> {
        match &self.when {
            When::Every(interval) => {
                let step = millis(*interval) as i64;
                let behind = (now_ms - previous_ms).max(0);
                Ok(previous_ms + step * (behind / step + 1))
            }
            When::Cron(cron, zone) => {
                let unreachable = |reason: String| Error::InvalidSchedule {
                    expression: self.expression.clone(),
                    reason,
                };
                let now = Timestamp::from_millisecond(now_ms).map_err(|e| unreachable(e.to_string()))?;
                let next = cron
                    .find_next_occurrence(&Zoned::new(now, zone.clone()), false)
                    .map_err(|e| unreachable(format!("no next run: {e}")))?;
                Ok(next.timestamp().as_millisecond())
            }
        }
    }
}

/// The parser's error, after the name and text of the first field that does not parse alone
/// (croner's messages do not say which field they are about).
fn naming_the_field(parser: &CronParser, expression: &str, error: croner::errors::CronError) -> String {
    const FIVE: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];
    const SIX: [&str; 6] = ["second", "minute", "hour", "day of month", "month", "day of week"];
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let names: &[&str] = if fields.len() == 6 { &SIX } else { &FIVE };
    if fields.len() == names.len() {
        for (at, field) in fields.iter().enumerate() {
            let alone: Vec<&str> = (0..fields.len()).map(|i| if i == at { *field } else { "*" }).collect();
            if parser.parse(&alone.join(" ")).is_err() {
                return format!("{} field {field:?}: {error}", names[at]);
            }
        }
    }
    error.to_string()
}

/// A named schedule's definition: when, and the job each tick enqueues.
///
/// ```
/// use queue_core::{NewJob, Schedule};
/// let digest = Schedule::new("0 9 * * 1-5", NewJob::new("digest", &serde_json::json!({"to": "team"})))
///     .time_zone("Europe/Paris");
/// assert!(digest.spec().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    zone: Option<String>,
    job: NewJob,
}

impl Schedule {
    /// Enqueues a copy of `job` at every tick of `expression` (see [`ScheduleSpec::parse`]).
    /// The job's id and run time are the tick's; its other options are kept.
    pub fn new(expression: impl Into<String>, job: NewJob) -> Self {
        Schedule {
            expression: expression.into(),
            zone: None,
            job,
        }
    }

    /// The time zone the expression is read in (IANA name; default UTC).
    pub fn time_zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// Parses the expression and zone.
    pub fn spec(&self) -> Result<ScheduleSpec> {
        ScheduleSpec::parse(&self.expression, self.zone.as_deref())
    }

    /// The stored form, after checking the expression, the zone and the job.
    pub(crate) fn record(&self, max_payload: usize) -> Result<(ScheduleSpec, Vec<u8>)> {
        let spec = self.spec()?;
        self.job.check(max_payload)?;
        let record = ScheduleRecord {
            expression: spec.expression().to_owned(),
            zone: spec.time_zone().to_owned(),
            kind: self.job.kind.clone(),
            payload: self.job.payload.clone(),
            priority: self.job.priority,
            max_attempts: self.job.max_attempts,
            backoff: self.job.backoff,
            timeout_ms: self.job.timeout.map(millis),
        };
        let bytes = rmp_serde::to_vec_named(&record).map_err(|e| Error::InvalidPayload(e.to_string()))?;
        Ok((spec, bytes))
    }
}

/// A schedule as stored in the queue's `schedules` hash (MessagePack; the scripts compare it,
/// never parse it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScheduleRecord {
    pub(crate) expression: String,
    pub(crate) zone: String,
    pub(crate) kind: String,
    #[serde(with = "serde_bytes")]
    pub(crate) payload: Vec<u8>,
    pub(crate) priority: i32,
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) timeout_ms: Option<u64>,
}

impl ScheduleRecord {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        rmp_serde::from_slice(bytes)
            .map_err(|e| Error::InvalidPayload(format!("a stored schedule does not decode: {e}")))
    }

    /// The job of the tick at `tick_ms`.
    pub(crate) fn job(&self, name: &str, tick_ms: i64) -> NewJob {
        let mut job = NewJob::from_encoded(self.kind.clone(), self.payload.clone())
            .id(format!("cron:{name}:{tick_ms}"))
            .priority(self.priority)
            .max_attempts(self.max_attempts)
            .backoff(self.backoff);
        if let Some(ms) = self.timeout_ms {
            job = job.timeout(Duration::from_millis(ms));
        }
        job
    }
}

/// A schedule as [`Queue::cron_list`](crate::Queue::cron_list) returns it.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleInfo {
    /// The queue its jobs go to.
    pub queue: String,
    /// Its name, unique in the queue.
    pub name: String,
    /// The cron expression or `@every` interval.
    pub expression: String,
    /// The time zone the expression is read in.
    pub time_zone: String,
    /// The kind of the jobs it enqueues.
    pub kind: String,
    /// Their payload, as JSON.
    pub payload: serde_json::Value,
    /// When it is next due (Unix ms); a time in the past means a worker fires it as soon as
    /// one runs.
    pub next_run_ms: i64,
}

impl FromStr for ScheduleSpec {
    type Err = Error;

    /// An expression in UTC.
    fn from_str(expression: &str) -> Result<Self> {
        ScheduleSpec::parse(expression, None)
    }
}

/// Checks a schedule name: a valid queue name (see [`validate_name`]) of at most 100 bytes.
pub fn validate_schedule_name(name: &str) -> Result<()> {
    validate_name(name).map_err(|error| match error {
        Error::InvalidQueueName { name, reason } => Error::InvalidScheduleName { name, reason },
        other => other,
    })?;
    if name.len() > MAX_SCHEDULE_NAME_LEN {
        return Err(Error::InvalidScheduleName {
            name: name.to_owned(),
            reason: "it is longer than 100 bytes",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ScheduleSpec;

    const MINUTE: i64 = 60_000;
    /// 2026-11-23T00:00:00Z, a Monday.
    const MONDAY: i64 = 1_795_392_000_000;

    #[test]
    fn five_or_six_fields_and_nicknames_parse_and_others_name_the_problem() {
        for good in [
            "* * * * *",
            "*/10 * * * * *",
            "@hourly",
            "@daily",
            "@weekly",
            "@every 90s",
        ] {
            assert!(ScheduleSpec::parse(good, None).is_ok(), "{good}");
        }
        let four = ScheduleSpec::parse("* * * *", None).unwrap_err().to_string();
        assert!(four.contains("expected 5 fields") && four.contains("got 4"), "{four}");
        let seven = ScheduleSpec::parse("0 0 0 1 1 * 2030", None).unwrap_err().to_string();
        assert!(seven.contains("got 7"), "{seven}");
        let range = ScheduleSpec::parse("61 * * * *", None).unwrap_err().to_string();
        assert!(range.contains("\"61 * * * *\": minute field \"61\""), "{range}");
        let weekday = ScheduleSpec::parse("0 0 * * * MONDAY", None).unwrap_err().to_string();
        assert!(weekday.contains("day of week field \"MONDAY\""), "{weekday}");
        let every = ScheduleSpec::parse("@every soon", None).unwrap_err().to_string();
        assert!(every.contains("@every 10s"), "{every}");
        let zone = ScheduleSpec::parse("@hourly", Some("Mars/Olympus"))
            .unwrap_err()
            .to_string();
        assert!(zone.contains("Mars/Olympus"), "{zone}");
    }

    #[test]
    fn cron_ticks_follow_the_zone_and_interval_ticks_keep_their_rhythm() {
        let paris = ScheduleSpec::parse("30 9 * * *", Some("Europe/Paris")).unwrap();
        // 09:30 in Paris in November (UTC+1) is 08:30 UTC.
        assert_eq!(
            paris.next_after(MONDAY, MONDAY).unwrap(),
            MONDAY + 8 * 60 * MINUTE + 30 * MINUTE
        );
        let seconds = ScheduleSpec::parse("*/15 * * * * *", None).unwrap();
        assert_eq!(seconds.next_after(MONDAY, MONDAY + 1).unwrap(), MONDAY + 15_000);
        let every = ScheduleSpec::parse("@every 10s", None).unwrap();
        // Three ticks missed: the next is the first after now, on the same rhythm.
        assert_eq!(every.next_after(MONDAY, MONDAY + 35_000).unwrap(), MONDAY + 40_000);
        assert_eq!(every.next_after(MONDAY, MONDAY + 40_000).unwrap(), MONDAY + 50_000);
    }
}

//! Named schedules: the operator's calls (add, list, remove) and the one workers make to fire
//! due ticks (see `lua/cron_*.lua`).
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fred::types::Value;

use super::Queue;
use crate::{
    request::RequestId,
    schedule::{validate_schedule_name, Schedule, ScheduleInfo, ScheduleRecord, ScheduleSpec},
    scripts::{status, Command, Reply},
    Error, Result,
};

/// What [`Queue::fire_due_schedules`] did.
#[derive(Debug, Clone, Default)]
pub struct FiredSchedules {
    /// The schedules whose due tick this call enqueued (other workers' calls enqueue the rest).
    pub fired: Vec<String>,
    /// How long until the next schedule is due, by the server's clock (`None`: no schedule).
    pub next_due_in: Option<Duration>,
}

/// A schedule as stored: its definition's bytes, decoded, and its next due time.
struct Stored {
    name: String,
    definition: Vec<u8>,
    next_ms: i64,
}

impl Queue {
    /// Adds a named schedule to this queue, or replaces the one of that name; returns it with its
    /// first run time. Workers serving the queue enqueue its job at every tick, once per tick
    /// however many of them run.
    ///
    /// ```no_run
    /// use queue_core::{NewJob, QueueClient, Schedule};
    /// # async fn demo(client: QueueClient) -> queue_core::Result<()> {
    /// let report = NewJob::new("report", &serde_json::json!({"kind": "daily"}));
    /// let reports = client.queue("reports")?;
    /// reports.cron_add("daily", Schedule::new("0 6 * * *", report).time_zone("Europe/Paris")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn cron_add(&self, name: &str, schedule: Schedule) -> Result<ScheduleInfo> {
        validate_schedule_name(name)?;
        let (spec, definition) = schedule.record(self.client.config().max_payload_bytes)?;
        let now = unix_ms(SystemTime::now());
        let next_ms = spec.next_after(now, now)?;
        self.client.index(self.name()).await?;
        let args = vec![
            Value::from(name),
            Value::Bytes(definition.clone().into()),
            Value::from(next_ms),
        ];
        self.call(Command::CronAdd, Some(&RequestId::new()), args).await?;
        info(self.name(), name, &definition, next_ms)
    }

    /// Removes a named schedule ([`Error::ScheduleNotFound`] if it does not exist). Jobs it
    /// already enqueued stay.
    pub async fn cron_remove(&self, name: &str) -> Result<()> {
        self.existing().await?;
        let (status, _) = self
            .call(Command::CronRemove, Some(&RequestId::new()), vec![name.into()])
            .await?;
        if status == status::NOT_FOUND {
            return Err(Error::ScheduleNotFound {
                queue: self.name().to_owned(),
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    /// The schedules of this queue, by name, with their next run times.
    pub async fn cron_list(&self) -> Result<Vec<ScheduleInfo>> {
        self.existing().await?;
        let (_, stored) = self.stored_schedules().await?;
        stored
            .iter()
            .map(|s| info(self.name(), &s.name, &s.definition, s.next_ms))
            .collect()
    }

    /// Enqueues the job of every schedule of this queue that is due, and says how long until the
    /// next is due: what a worker calls, then sleeps for. A tick is enqueued once however many
    /// workers call this at once (the script compares the schedule with what the caller read);
    /// ticks missed while no worker ran are one job, after which the schedule goes on from
    /// now. A schedule that does not parse here (a time zone this host lacks) is skipped with
    /// a warning.
    pub async fn fire_due_schedules(&self) -> Result<FiredSchedules> {
        let (now_ms, stored) = self.stored_schedules().await?;
        let mut outcome = FiredSchedules::default();
        let mut next_due: Option<i64> = None;
        for schedule in stored {
            let fired = match self.fire(&schedule, now_ms).await {
                Ok(fired) => fired,
                Err(error) if error.is_transient() => return Err(error),
                Err(error) => {
                    tracing::warn!(%error, queue = self.name(), schedule = schedule.name, "cannot fire the schedule; skipping it");
                    continue;
                }
            };
            let due = match fired {
                Some(next) => {
                    outcome.fired.push(schedule.name);
                    next
                }
                None => schedule.next_ms,
            };
            next_due = Some(next_due.map_or(due, |n| n.min(due)));
        }
        outcome.next_due_in = next_due.map(|due| Duration::from_millis(due.saturating_sub(now_ms).max(0) as u64));
        Ok(outcome)
    }

    /// Fires `schedule` if it is due: `Some(next due ms)` when this call enqueued its tick.
    /// A tick another worker fired first leaves the next due time as it was read, so the
    /// caller looks again at once and then sees the new one.
    async fn fire(&self, schedule: &Stored, now_ms: i64) -> Result<Option<i64>> {
        if schedule.next_ms > now_ms {
            return Ok(None);
        }
        let record = ScheduleRecord::decode(&schedule.definition)?;
        let spec = ScheduleSpec::parse(&record.expression, Some(&record.zone))?;
        let next_ms = spec.next_after(schedule.next_ms, now_ms)?;
        let fields = record
            .job(&schedule.name, schedule.next_ms)
            .into_push_fields(self.client.config().max_payload_bytes)?;
        let args = vec![
            Value::from(schedule.name.as_str()),
            Value::from(schedule.next_ms.to_string()),
            Value::from(sha1_smol::Sha1::from(&schedule.definition).digest().to_string()),
            Value::from(next_ms),
            Value::Bytes(fields.props.into()),
            Value::from(fields.id),
            Value::Bytes(fields.envelope.into()),
        ];
        let (status, _) = self.call(Command::CronFire, Some(&RequestId::new()), args).await?;
        Ok((status == status::OK).then_some(next_ms))
    }

    /// The server's time and the stored schedules, by name.
    async fn stored_schedules(&self) -> Result<(i64, Vec<Stored>)> {
        let (_, mut reply) = self.call(Command::CronList, None, vec![]).await?;
        let now_ms = reply.int()?;
        let mut stored = Vec::new();
        while reply.has_more() {
            stored.push(read_stored(&mut reply)?);
        }
        stored.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((now_ms, stored))
    }
}

fn read_stored(reply: &mut Reply) -> Result<Stored> {
    Ok(Stored {
        name: reply.string()?,
        definition: reply.bytes()?,
        next_ms: reply.int()?,
    })
}

fn info(queue: &str, name: &str, definition: &[u8], next_run_ms: i64) -> Result<ScheduleInfo> {
    let record = ScheduleRecord::decode(definition)?;
    let payload = rmp_serde::from_slice(&record.payload)
        .map_err(|e| Error::InvalidPayload(format!("a stored schedule's payload does not decode: {e}")))?;
    Ok(ScheduleInfo {
        queue: queue.to_owned(),
        name: name.to_owned(),
        expression: record.expression,
        time_zone: record.zone,
        kind: record.kind,
        payload,
        next_run_ms,
    })
}

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

//! The pages: server-rendered HTML (maud escapes every value), forms for the actions, a
//! confirmation page before anything destructive, and the embedded assets.
use axum::{
    extract::{Path, Query, Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
    Form,
};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use queue_core::{Cancellation, JobState};
use serde::Deserialize;

use super::{
    history::Rate,
    links::{segment, Root},
    Dashboard, Failure, Shared,
};
use crate::{admin, output, stats};

/// Jobs per page.
const PAGE: u64 = 25;

/// The busiest groups a queue page lists.
const GROUPS: u32 = 10;

/// How often the live parts of a page refresh, in ms.
const REFRESH_MS: u32 = 3000;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/live.js");

type PageResult = Result<Response, Failure>;

fn layout(dashboard: &Dashboard, root: &Root, title: &str, live: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · queue dashboard" }
                link rel="stylesheet" href=(root.to("assets/style.css"));
                script src=(root.to("assets/live.js")) defer {}
            }
            body data-refresh=[live.then_some(REFRESH_MS)] {
                header {
                    a.brand href=(root.to("")) { "queue dashboard" }
                    span.redis { (dashboard.redis) }
                }
                main { (body) }
            }
        }
    }
}

/// Makes the page of a [`Failure`] a handler answered: here the request's path is known, and
/// with it where the page's links lead.
pub(crate) async fn render_failure(root: Root, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    match response.extensions_mut().remove::<Failure>() {
        Some(failure) => (failure.status, failure_page(&root, failure.status, &failure.message)).into_response(),
        None => response,
    }
}

/// The page of a failed request.
fn failure_page(root: &Root, status: StatusCode, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (status.as_u16()) " · queue dashboard" }
                link rel="stylesheet" href=(root.to("assets/style.css"));
            }
            body {
                header { a.brand href=(root.to("")) { "queue dashboard" } }
                main {
                    h1 { (status.canonical_reason().unwrap_or("Error")) }
                    p.error { (message) }
                    p { a href=(root.to("")) { "All queues" } }
                }
            }
        }
    }
}

fn page(markup: Markup) -> PageResult {
    Ok(markup.into_response())
}

/// `GET /`: every queue, its counts, paused, latency, and the rates of the last hour.
pub(crate) async fn overview(root: Root, State(dashboard): State<Shared>) -> PageResult {
    let report = stats::collect(&dashboard.client, &[]).await?;
    let body = html! {
        h1 { "Queues" }
        section #queues data-live {
            @if report.queues.is_empty() {
                p { "No queues yet: a queue appears here once it has received a job." }
            } @else {
                table.counts {
                    thead { tr {
                        th { "Queue" }
                        @for state in STATES { th.num { (title_case(state.as_str())) } }
                        th { "Paused" } th.num { "Latency" } th.num { "Processed/min" } th.num { "Failed/min" }
                    } }
                    tbody {
                        @for row in &report.queues {
                            @let rate = dashboard.history.rates(Some(&row.name)).last().copied();
                            tr data-queue=(row.name) {
                                td { a href=(root.queue(&row.name)) { (row.name) } }
                                @for (state, count) in STATES.iter().zip(state_counts(&row.counts)) {
                                    td.num data-state=(state.as_str()) { (count) }
                                }
                                td data-field="paused" { @if row.paused { span.badge { "paused" } } @else { "no" } }
                                td.num data-field="latency" { (output::duration_ms(row.latency_ms)) }
                                td.num { (per_min(rate.map(|r| r.processed_per_min))) }
                                td.num { (per_min(rate.map(|r| r.failed_per_min))) }
                            }
                        }
                    }
                }
            }
            h2 { "Processed and failed per minute, all queues" }
            (chart(&dashboard.history.rates(None), &dashboard))
            p.meta {
                "Redis " (report.redis.version) " · memory used " (report.redis.used_memory_human)
                @if let Some(warning) = queue_core::eviction_warning(&report.redis.maxmemory_policy) {
                    br; span.error { "warning: " (warning) }
                }
            }
        }
    };
    page(layout(&dashboard, &root, "Queues", true, body))
}

/// The states in the order of the stats columns.
const STATES: [JobState; 6] = [
    JobState::Pending,
    JobState::Scheduled,
    JobState::Retrying,
    JobState::Active,
    JobState::Dead,
    JobState::Completed,
];

fn state_counts(counts: &stats::Counts) -> [u64; 6] {
    [
        counts.pending,
        counts.scheduled,
        counts.retrying,
        counts.active,
        counts.dead,
        counts.completed,
    ]
}

fn title_case(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn per_min(rate: Option<f64>) -> String {
    match rate {
        None => "-".into(),
        Some(r) if r < 10.0 => format!("{r:.1}"),
        Some(r) => format!("{r:.0}"),
    }
}

/// The rates as an SVG line chart over the last hour: processed in green, failed in red.
fn chart(rates: &[Rate], dashboard: &Dashboard) -> Markup {
    const W: f64 = 640.0;
    const H: f64 = 150.0;
    let window_ms = super::history::WINDOW.as_millis() as f64;
    let Some(last) = rates.last() else {
        return html! {
            p.chart-empty {
                "No rates yet: this dashboard samples the counters every "
                (humantime::format_duration(dashboard.history.every()))
                " and keeps the last hour in its own memory, since "
                (output::timestamp(dashboard.history.since_ms())) "."
            }
        };
    };
    let top = rates
        .iter()
        .map(|r| r.processed_per_min.max(r.failed_per_min))
        .fold(1.0_f64, f64::max)
        .ceil();
    let end = last.at_ms as f64;
    // The last hour, or all this dashboard has seen when it is younger than that.
    let span_ms = (end - rates[0].at_ms as f64)
        .max(dashboard.history.every().as_millis() as f64)
        .min(window_ms);
    let ago = |fraction: f64| format!("-{}", output::duration_ms((span_ms * fraction) as u64));
    let points = |value: fn(&Rate) -> f64| {
        rates
            .iter()
            .filter(|r| end - r.at_ms as f64 <= span_ms)
            .map(|r| {
                let x = W - (end - r.at_ms as f64) / span_ms * W;
                let y = H - value(r) / top * H;
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    html! {
        figure.chart {
            svg viewBox=(format!("-40 -10 {} {}", W + 50.0, H + 30.0)) role="img"
                aria-label="processed and failed jobs per minute" {
                line.axis x1="0" y1=(H) x2=(W) y2=(H) {}
                line.axis x1="0" y1="0" x2="0" y2=(H) {}
                text x="-6" y="4" text-anchor="end" { (top) }
                text x="-6" y=(H) text-anchor="end" { "0" }
                text x="0" y=(H + 16.0) { (ago(1.0)) }
                text x=(W / 2.0) y=(H + 16.0) text-anchor="middle" { (ago(0.5)) }
                text x=(W) y=(H + 16.0) text-anchor="end" { "now" }
                polyline.processed points=(points(|r| r.processed_per_min)) {}
                polyline.failed points=(points(|r| r.failed_per_min)) {}
            }
            figcaption {
                span.processed { "■ processed/min" } " "
                span.failed { "■ failed attempts/min" }
                " · sampled every " (humantime::format_duration(dashboard.history.every()))
                " by this dashboard since " (output::timestamp(dashboard.history.since_ms()))
            }
        }
    }
}

/// The query of a queue page.
#[derive(Debug, Deserialize)]
pub(crate) struct QueueView {
    /// The state whose jobs are listed (pending when absent).
    state: Option<JobState>,
    #[serde(default)]
    offset: u64,
    done: Option<String>,
    n: Option<u64>,
}

/// `GET /queues/{queue}?state=&offset=`: counts, limits, pause and resume, lookup by id, the
/// jobs of one state a page at a time with the actions that state allows, and the schedules.
pub(crate) async fn queue(
    root: Root,
    State(dashboard): State<Shared>,
    Path(queue): Path<String>,
    Query(view): Query<QueueView>,
) -> PageResult {
    let handle = dashboard.client.queue(&queue)?;
    let state = view.state.unwrap_or(JobState::Pending);
    let (stats, list, schedules, groups) = tokio::try_join!(
        handle.stats(),
        handle.jobs(state, view.offset, PAGE),
        handle.cron_list(),
        handle.groups(GROUPS),
    )?;
    let row = stats::QueueRow::from(stats);
    let limits = row.limits;
    let base = root.queue(&queue);
    let csrf = dashboard.access.csrf();
    let notice = view
        .done
        .as_deref()
        .and_then(|done| notice(done, view.n.unwrap_or(0), &queue));
    let body = html! {
        h1 { "Queue " span.name { (queue) } }
        @if let Some(notice) = notice { p.notice role="status" { (notice) } }
        section #summary data-live {
            div.actions {
                @if row.paused {
                    span.badge { "paused" } " "
                    form method="post" action=(format!("{base}/resume")) {
                        input type="hidden" name="csrf" value=(csrf);
                        button #resume type="submit" { "Resume" }
                    }
                } @else {
                    form method="post" action=(format!("{base}/pause")) {
                        input type="hidden" name="csrf" value=(csrf);
                        button #pause type="submit" { "Pause" }
                    }
                }
            }
            dl.counts {
                @for (state, count) in STATES.iter().zip(state_counts(&row.counts)) {
                    div data-state=(state.as_str()) { dt { (title_case(state.as_str())) } dd { (count) } }
                }
                div { dt { "Latency" } dd { (output::duration_ms(row.latency_ms)) } }
                div { dt { "Enqueued (all time)" } dd { (row.counts.enqueued_total) } }
                div { dt { "Completed (all time)" } dd { (row.counts.completed_total) } }
                div { dt { "Failed attempts (all time)" } dd { (row.counts.failed_attempts_total) } }
                div { dt { "Cancelled (all time)" } dd { (row.counts.cancelled_total) } }
                div data-limit="rate" title="at most this many jobs started per window, across all workers" {
                    dt { "Rate limit" } dd { (limits.rate.map_or("none".into(), |rate| rate.to_string())) }
                }
                div data-limit="concurrency" title="at most this many jobs running at once, across all workers" {
                    dt { "Concurrency limit" } dd { (limits.concurrency.map_or("none".into(), |n| n.to_string())) }
                }
                // Group limits only where set: most queues have no groups.
                @if let Some(rate) = limits.group_rate {
                    div data-limit="group-rate" title="at most this many jobs of one group started per window" {
                        dt { "Group rate limit" } dd { (rate) }
                    }
                }
                @if let Some(n) = limits.group_concurrency {
                    div data-limit="group-concurrency" title="at most this many jobs of one group running at once" {
                        dt { "Group concurrency limit" } dd { (n) }
                    }
                }
            }
            (chart(&dashboard.history.rates(Some(&queue)), &dashboard))
        }
        form.lookup method="get" action=(format!("{base}/lookup")) {
            label for="lookup-id" { "Job id " }
            input #lookup-id name="id" required placeholder="a job id";
            button type="submit" { "Open" }
        }
        section #jobs data-live {
            nav.tabs {
                @for (tab, count) in STATES.iter().zip(state_counts(&row.counts)) {
                    a.tab.current[*tab == state] data-tab=(tab.as_str())
                        href=(format!("{base}?state={}", tab.as_str())) {
                        (title_case(tab.as_str())) " " span.count { (count) }
                    }
                }
            }
            h2 { (title_case(state.as_str())) " jobs (" (list.total) ")" }
            @if list.jobs.is_empty() {
                p { "No " (state.as_str()) " jobs." }
            } @else {
                p.actions {
                    @match state {
                        JobState::Dead => {
                            a.button #retry-all href=(format!("{base}/confirm/retry-all")) { "Retry all…" } " "
                            a.button.danger #purge href=(format!("{base}/confirm/purge")) { "Purge…" }
                        }
                        JobState::Pending | JobState::Scheduled | JobState::Retrying => {
                            a.button.danger #drain href=(format!("{base}/confirm/drain")) { "Drain…" }
                        }
                        _ => {}
                    }
                }
                table {
                    thead { tr {
                        th { "Id" } th { "Kind" } th.num { "Attempts" } th { (time_label(state)) } th { "Error" } th {}
                    } }
                    tbody {
                        @for job in &list.jobs {
                            tr data-job=(job.id) {
                                td { a href=(root.job(&queue, &job.id)) { (job.id) } }
                                td { (job.kind) }
                                td.num { (job.attempts) " of " (job.max_attempts) }
                                td { (summary_time(job)) }
                                td.error { (job.error.as_deref().unwrap_or("")) }
                                td.row-actions { (job_actions(&base, &job.id, job.state, csrf)) }
                            }
                        }
                    }
                }
                p.pager {
                    @let here = format!("{base}?state={}", state.as_str());
                    @if view.offset > 0 {
                        a href=(format!("{here}&offset={}", view.offset.saturating_sub(PAGE))) { "← previous" } " "
                    }
                    (view.offset + 1) "–" (view.offset + list.jobs.len() as u64) " of " (list.total)
                    @if view.offset + (list.jobs.len() as u64) < list.total {
                        " " a #next href=(format!("{here}&offset={}", view.offset + PAGE)) { "next →" }
                    }
                }
            }
        }
        (groups_section(&groups))
        (schedules_section(&queue, &schedules))
    };
    page(layout(&dashboard, &root, &queue, true, body))
}

/// The busiest groups, when the queue's jobs carry groups.
fn groups_section(report: &queue_core::GroupsReport) -> Markup {
    html! {
        section #groups data-live {
            @if !report.groups.is_empty() {
                h2 { "Groups (" (report.waiting) " waiting, " (report.running) " running)" }
                table {
                    thead { tr {
                        th { "Group" } th.num { "Pending" } th.num { "Active" } th.num { "Weight" } th { "State" }
                    } }
                    tbody {
                        @for group in &report.groups {
                            tr data-group=(group.name) {
                                td { (group.name) }
                                td.num { (group.pending) }
                                td.num { (group.active) }
                                td.num { (group.weight) }
                                td { (group.state) }
                            }
                        }
                    }
                }
                @if report.waiting + report.running > report.groups.len() as u64 {
                    p.meta { "The " (report.groups.len()) " busiest; " code { "queue-cli groups" } " lists more." }
                }
            }
        }
    }
}

/// The queue's cron schedules, each with its next run.
fn schedules_section(queue: &str, schedules: &[queue_core::ScheduleInfo]) -> Markup {
    html! {
        section #schedules data-live {
            h2 { "Schedules (" (schedules.len()) ")" }
            @if schedules.is_empty() {
                p.meta { "No schedules: " code { "queue-cli cron add " (queue) " <name> <expression> <payload>" } " adds one." }
            } @else {
                table {
                    thead { tr {
                        th { "Name" } th { "Schedule" } th { "Time zone" } th { "Kind" } th { "Next run" } th { "Payload" }
                    } }
                    tbody {
                        @for schedule in schedules {
                            tr data-schedule=(schedule.name) {
                                td { (schedule.name) }
                                td { code { (schedule.expression) } }
                                td { (schedule.time_zone) }
                                td { (schedule.kind) }
                                td data-field="next-run" { (output::timestamp(schedule.next_run_ms)) }
                                td { code { (schedule.payload.to_string()) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The heading of a list's time column: each state's own time.
fn time_label(state: JobState) -> &'static str {
    match state {
        JobState::Pending => "Ready since",
        JobState::Scheduled | JobState::Retrying => "Runs at",
        JobState::Active => "Lease until",
        JobState::Dead => "Died at",
        JobState::Completed => "Completed at",
        #[allow(unreachable_patterns)] // a state added to queue-core later
        _ => "Since",
    }
}

fn summary_time(job: &queue_core::JobSummary) -> String {
    let ms = match job.state {
        JobState::Active => job.lease_expires_at_ms,
        JobState::Dead | JobState::Completed => job.finished_at_ms,
        _ => job.run_at_ms,
    };
    ms.map_or_else(|| "-".into(), output::timestamp)
}

/// The buttons a job in `state` offers: retry a dead one, run a waiting one now, delete a
/// waiting or finished one (after a confirmation). `base` links to the queue's page.
fn job_actions(base: &str, id: &str, state: JobState, csrf: &str) -> Markup {
    let post = |target: &str, class: &str, label: &str| {
        html! {
            form method="post" action=(format!("{base}/{target}")) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="id" value=(id);
                button class=(class) type="submit" { (label) }
            }
            " "
        }
    };
    html! {
        @match state {
            JobState::Dead => (post("dead/retry", "retry", "Retry")),
            JobState::Scheduled | JobState::Retrying => (post("jobs/run-now", "run-now", "Run now")),
            _ => {}
        }
        @if matches!(state, JobState::Pending | JobState::Scheduled | JobState::Retrying | JobState::Dead | JobState::Completed) {
            a.button.danger.delete href=(format!("{base}/confirm/delete?id={}", segment(id))) { "Delete…" }
        }
    }
}

/// The line a queue page shows after an action.
fn notice(done: &str, n: u64, queue: &str) -> Option<String> {
    Some(match done {
        "paused" => format!("Paused {queue}: workers take no new jobs from it until it is resumed."),
        "resumed" => format!("Resumed {queue}."),
        "retried" => format!("Moved {} from the dead letter back to pending.", jobs(n, "job")),
        "purged" => format!("Purged {}.", jobs(n, "dead job")),
        "deleted" => "Deleted the job.".to_owned(),
        "ran" => "The job is pending now: it runs when a worker is free.".to_owned(),
        "drained" => format!("Removed {}.", jobs(n, "waiting job")),
        "cancelled" => "Cancelled the job: it was waiting, and is removed.".to_owned(),
        "stopped" => "Cancelled the job: it was running, and its worker stops it.".to_owned(),
        _ => return None,
    })
}

/// `1 dead job`, `2 dead jobs`.
fn jobs(n: u64, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

/// The lookup form's query.
#[derive(Debug, Deserialize)]
pub(crate) struct Lookup {
    id: String,
}

/// `GET /queues/{queue}/lookup?id=`: to the job's page.
pub(crate) async fn lookup(root: Root, Path(queue): Path<String>, Query(lookup): Query<Lookup>) -> Redirect {
    match lookup.id.trim() {
        "" => Redirect::to(&root.queue(&queue)),
        id => Redirect::to(&root.job(&queue, id)),
    }
}

/// `GET /queues/{queue}/jobs/{id}`: everything known about one job.
/// Live, so a running job's progress and its end show without reloading.
pub(crate) async fn job(
    root: Root,
    State(dashboard): State<Shared>,
    Path((queue, id)): Path<(String, String)>,
) -> PageResult {
    let job = dashboard.client.queue(&queue)?.job(&id).await?;
    let payload = serde_json::to_string_pretty(&admin::payload_json(&job))?;
    let since_label = match job.state {
        JobState::Active => "Lease until",
        JobState::Dead => "Died at",
        JobState::Completed => "Completed at",
        _ => "In this state since",
    };
    let base = root.queue(&queue);
    let cancellable = matches!(
        job.state,
        JobState::Pending | JobState::Scheduled | JobState::Retrying | JobState::Active
    );
    let body = html! {
        p.crumbs { a href=(root.to("")) { "Queues" } " / " a href=(base) { (queue) } }
        h1 { "Job " span.name { (job.envelope.id) } }
        section #job data-live {
            dl.job {
                dt { "State" } dd #state { span class=(format!("state {}", job.state.as_str())) { (job.state.as_str()) } }
                dt { "Kind" } dd { (job.envelope.kind) }
                dt { "Attempts" } dd { (job.attempts) " of " (job.envelope.max_attempts) }
                dt { "Priority" } dd { (job.envelope.priority) }
                @if let Some(group) = &job.group { dt { "Group" } dd #group { (group) } }
                dt { "Backoff" } dd { (serde_json::to_string(&job.envelope.backoff)?) }
                @if let Some(ms) = job.envelope.timeout_ms { dt { "Timeout" } dd { (output::duration_ms(ms)) } }
                dt { "Created at" } dd { (output::timestamp(job.created_at_ms)) }
                @if let Some(ms) = job.run_at_ms { dt { "Runs at" } dd { (output::timestamp(ms)) } }
                @if let Some(ms) = job.state_since_ms { dt { (since_label) } dd { (output::timestamp(ms)) } }
                @if let Some(progress) = &job.progress {
                    dt { "Progress" } dd #progress { (progress_view(progress)?) }
                } @else if job.state == JobState::Active {
                    dt { "Progress" } dd #progress { span.meta { "none reported yet" } }
                }
                @if let Some(result) = &job.result {
                    dt { "Result" } dd #result { pre.result { (serde_json::to_string_pretty(result)?) } }
                } @else if job.state == JobState::Completed {
                    dt { "Result" } dd #result { span.meta { "none: the handler returned nothing" } }
                }
                dt { "Last error" } dd { @match &job.last_error { Some(e) => pre.error { (e) }, None => "-" } }
                dt { "Payload" } dd { pre.payload { (payload) } }
            }
            // A div: a form inside a p would end the p.
            div.actions #job-actions {
                (job_actions(&base, &job.envelope.id, job.state, dashboard.access.csrf()))
                @if cancellable {
                    a.button.danger.cancel-job href=(format!("{base}/confirm/cancel?id={}", segment(&job.envelope.id))) { "Cancel…" }
                }
            }
        }
    };
    page(layout(&dashboard, &root, &format!("Job {id}"), true, body))
}

/// A progress report: a number from 0 to 100 as a bar (the convention of bull-board and
/// BullMQ) beside its value, anything else as JSON.
fn progress_view(progress: &serde_json::Value) -> Result<Markup, serde_json::Error> {
    Ok(match progress.as_f64() {
        Some(n) if (0.0..=100.0).contains(&n) => html! {
            progress max="100" value=(n) {} " " span.progress-value { (progress) }
        },
        _ => html! { pre.progress { (serde_json::to_string_pretty(progress)?) } },
    })
}

/// `GET /queues/{queue}/confirm/{action}`: the question before a destructive or bulk action.
pub(crate) async fn confirm(
    root: Root,
    State(dashboard): State<Shared>,
    Path((queue, action)): Path<(String, String)>,
    Query(which): Query<Which>,
) -> PageResult {
    let handle = dashboard.client.queue(&queue)?;
    let stats = handle.stats().await?;
    let dead = stats.dead;
    let waiting = stats.pending + stats.scheduled + stats.retrying;
    let base = root.queue(&queue);
    let mut id = None;
    let (mut keep, mut keep_link) = ("Cancel", None);
    let (question, button, target, back) = match action.as_str() {
        "purge" => (
            format!("Delete {} of {queue} for good?", jobs(dead, "dead job")),
            format!("Purge {}", jobs(dead, "dead job")),
            "dead/purge",
            Some(JobState::Dead),
        ),
        "retry-all" => (
            format!(
                "Move {} of {queue} back to pending, with fresh attempts?",
                jobs(dead, "dead job")
            ),
            format!("Retry {}", jobs(dead, "dead job")),
            "dead/retry-all",
            Some(JobState::Dead),
        ),
        "drain" => (
            format!(
                "Remove {} of {queue} ({} pending, {} scheduled, {} retrying) for good? Running and \
                 finished jobs stay.",
                jobs(waiting, "waiting job"),
                stats.pending,
                stats.scheduled,
                stats.retrying
            ),
            format!("Drain {}", jobs(waiting, "waiting job")),
            "drain",
            None,
        ),
        "delete" => {
            let job = handle.job(which.id.as_deref().unwrap_or_default()).await?;
            let question = format!(
                "Delete job {} ({}) of {queue}, with everything kept about it, for good?",
                job.envelope.id,
                job.state.as_str()
            );
            id = Some(job.envelope.id);
            (question, "Delete the job".to_owned(), "jobs/delete", Some(job.state))
        }
        "cancel" => {
            let job = handle.job(which.id.as_deref().unwrap_or_default()).await?;
            let question = match job.state {
                JobState::Active => format!(
                    "Cancel job {} of {queue}? It is running: its worker stops it now. It is not \
                     retried and does not go to the dead letter.",
                    job.envelope.id
                ),
                state => format!(
                    "Cancel job {} ({state}) of {queue}? It is removed and never runs.",
                    job.envelope.id
                ),
            };
            // "Cancel" would read as the action itself here; keeping it leads back to the job.
            keep = "Keep it";
            keep_link = Some(root.job(&queue, &job.envelope.id));
            id = Some(job.envelope.id);
            (question, "Cancel the job".to_owned(), "jobs/cancel", Some(job.state))
        }
        _ => return Err(Failure::new(StatusCode::NOT_FOUND, format!("no action {action:?}"))),
    };
    let cancel = match (keep_link, back) {
        (Some(link), _) => link,
        (None, Some(state)) => format!("{base}?state={}", state.as_str()),
        (None, None) => base.clone(),
    };
    let body = html! {
        h1 { "Confirm" }
        p.question { (question) }
        form method="post" action=(format!("{base}/{target}")) {
            input type="hidden" name="csrf" value=(dashboard.access.csrf());
            @if let Some(id) = &id { input type="hidden" name="id" value=(id); }
            button.danger #confirm type="submit" { (button) } " "
            a.button #cancel href=(cancel) { (keep) }
        }
    };
    page(layout(&dashboard, &root, "Confirm", false, body))
}

/// The job a confirmation is about, when it is about one.
#[derive(Debug, Deserialize)]
pub(crate) struct Which {
    id: Option<String>,
}

/// A form that only proves it came from a page of this dashboard.
#[derive(Debug, Deserialize)]
pub(crate) struct Action {
    csrf: String,
}

/// A form naming one job.
#[derive(Debug, Deserialize)]
pub(crate) struct JobAction {
    csrf: String,
    id: String,
}

fn checked(dashboard: &Dashboard, csrf: &str) -> Result<(), Failure> {
    match dashboard.access.csrf_ok(csrf) {
        true => Ok(()),
        false => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "this form is stale or from elsewhere: reload the page and try again",
        )),
    }
}

/// Back to the queue's page (listing `state`), saying what was done.
fn done(root: &Root, queue: &str, what: &str, n: Option<u64>, state: Option<JobState>) -> Redirect {
    let n = n.map(|n| format!("&n={n}")).unwrap_or_default();
    let state = state.map(|s| format!("&state={}", s.as_str())).unwrap_or_default();
    Redirect::to(&format!("{}?done={what}{n}{state}", root.queue(queue)))
}

/// `POST /queues/{queue}/pause`.
pub(crate) async fn pause(
    root: Root,
    State(dashboard): State<Shared>,
    Path(queue): Path<String>,
    Form(form): Form<Action>,
) -> Result<Redirect, Failure> {
    checked(&dashboard, &form.csrf)?;
    dashboard.client.queue(&queue)?.pause().await?;
    Ok(done(&root, &queue, "paused", None, None))
}

/// `POST /queues/{queue}/resume`.
pub(crate) async fn resume(
    root: Root,
    State(dashboard): State<Shared>,
    Path(queue): Path<String>,
    Form(form): Form<Action>,
) -> Result<Redirect, Failure> {
    checked(&dashboard, &form.csrf)?;
    dashboard.client.queue(&queue)?.resume().await?;
    Ok(done(&root, &queue, "resumed", None, None))
}

/// `POST /queues/{queue}/dead/retry`: one dead job back to pending.
pub(crate) async fn dead_retry(
    root: Root,
    State(dashboard): State<Shared>,
    Path(queue): Path<String>,
    Form(form): Form<JobAction>,
) -> Result<Redirect, Failure> {
    checked(&dashboard, &form.csrf)?;
    let moved = dashboard.client.queue(&queue)?.dead_replay(&[&form.id]).await?;
    Ok(done(&root, &queue, "retried", Some(moved), Some(JobState::Dead)))
}

/// `POST /queues/{queue}/dead/retry-all`.
pub(crate) async fn dead_retry_all(
    root: Root,
    State(dashboard): State<Shared>,
    Path(queue): Path<String>,
    Form(form): Form<Action>,
) -> Result<Redirect, Failure> {
    checked(&dashboard, &form.csrf)?;
    let moved = dashboard.client.queue(&queue)?.dead_replay_all().await?;
    Ok(done(&root, &queue, "retried", Some(moved), Some(JobState::Dead)))
}

/// `POST /queues/{queue}/dead/purge`.
pub(crate) async fn dead_purge(
    root: Root,
    State(dashboard): State<Shared>,
    Path(queue): Path<String>,
    Form(form): Form<Action>,
) -> Result<Redirect, Failure> {
    checked(&dashboard, &form.csrf)?;
    let purged = dashboard.client.queue(&queue)?.dead_purge().await?;
    Ok(done(&root, &queue, "purged", Some(purged), Some(JobState::Dead)))
}

/// `POST /queues/{queue}/jobs/delete`: one waiting or finished job, for good.
pub(crate) async fn delete_job(
    root: Root,
    State(dashboard): State<Shared>,
    Path(queue): Path<String>,
    Form(form): Form<JobAction>,
) -> Result<Redirect, Failure> {
    checked(&dashboard, &form.csrf)?;
    let from = dashboard.client.queue(&queue)?.delete_job(&form.id).await?;
    Ok(done(&root, &queue, "deleted", None, Some(from)))
}

/// `POST /queues/{queue}/jobs/run-now`: a scheduled or retrying job becomes pending.
pub(crate) async fn run_now(
    root: Root,
    State(dashboard): State<Shared>,
    Path(queue): Path<String>,
    Form(form): Form<JobAction>,
) -> Result<Redirect, Failure> {
    checked(&dashboard, &form.csrf)?;
    let from = dashboard.client.queue(&queue)?.retry_job(&form.id).await?;
    Ok(done(&root, &queue, "ran", None, Some(from)))
}

/// `POST /queues/{queue}/jobs/cancel`: a waiting job is removed, a running one stopped.
pub(crate) async fn cancel_job(
    root: Root,
    State(dashboard): State<Shared>,
    Path(queue): Path<String>,
    Form(form): Form<JobAction>,
) -> Result<Redirect, Failure> {
    checked(&dashboard, &form.csrf)?;
    match dashboard.client.queue(&queue)?.cancel(&form.id).await? {
        Cancellation::Removed => Ok(done(&root, &queue, "cancelled", None, None)),
        Cancellation::Stopped => Ok(done(&root, &queue, "stopped", None, Some(JobState::Active))),
        // It finished between the page and the click.
        Cancellation::AlreadyFinished(state) => Err(Failure::new(
            StatusCode::CONFLICT,
            format!("job {:?} of {queue} is {state} already: nothing to cancel", form.id),
        )),
    }
}

/// `POST /queues/{queue}/drain`: every waiting job, for good.
pub(crate) async fn drain(
    root: Root,
    State(dashboard): State<Shared>,
    Path(queue): Path<String>,
    Form(form): Form<Action>,
) -> Result<Redirect, Failure> {
    checked(&dashboard, &form.csrf)?;
    let removed = dashboard.client.queue(&queue)?.drain().await?;
    Ok(done(&root, &queue, "drained", Some(removed), None))
}

/// `GET /assets/style.css`.
pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// `GET /assets/live.js`.
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        PreEscaped(body).0,
    )
        .into_response()
}

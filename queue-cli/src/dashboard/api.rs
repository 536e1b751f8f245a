//! The JSON under the pages, in the shapes of the CLI's `--json` output.
use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::json;

use super::{Failure, Shared};
use crate::{admin, stats};

/// A failed API call: its status and `{"error": "..."}`.
pub(crate) struct ApiFailure(Failure);

impl<E: Into<Failure>> From<E> for ApiFailure {
    fn from(error: E) -> Self {
        ApiFailure(error.into())
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        (self.0.status, Json(json!({ "error": self.0.message }))).into_response()
    }
}

type ApiResult = Result<Response, ApiFailure>;

/// `GET /api/queues`: what `queue-cli stats --json` prints.
pub(crate) async fn queues(State(dashboard): State<Shared>) -> ApiResult {
    Ok(Json(stats::collect(&dashboard.client, &[]).await?).into_response())
}

/// `GET /api/queues/{queue}`: one row of `queue-cli stats --json`.
pub(crate) async fn queue(State(dashboard): State<Shared>, Path(queue): Path<String>) -> ApiResult {
    let row = stats::QueueRow::from(dashboard.client.queue(&queue)?.stats().await?);
    Ok(Json(row).into_response())
}

/// `GET /api/queues/{queue}/limits`: what `queue-cli limit <queue> --json` prints.
pub(crate) async fn limits(State(dashboard): State<Shared>, Path(queue): Path<String>) -> ApiResult {
    Ok(Json(dashboard.client.queue(&queue)?.limits().await?).into_response())
}

/// `GET /api/queues/{queue}/cron`: what `queue-cli cron list <queue> --json` prints.
pub(crate) async fn cron(State(dashboard): State<Shared>, Path(queue): Path<String>) -> ApiResult {
    let schedules = dashboard.client.queue(&queue)?.cron_list().await?;
    Ok(Json(json!({ "schedules": schedules })).into_response())
}

/// How many groups to list.
#[derive(Debug, Deserialize)]
pub(crate) struct GroupsQuery {
    #[serde(default = "default_groups")]
    limit: u32,
}

fn default_groups() -> u32 {
    20
}

/// `GET /api/queues/{queue}/groups?limit=`: what `queue-cli groups <queue> --json` prints.
pub(crate) async fn groups(
    State(dashboard): State<Shared>,
    Path(queue): Path<String>,
    Query(query): Query<GroupsQuery>,
) -> ApiResult {
    Ok(Json(dashboard.client.queue(&queue)?.groups(query.limit).await?).into_response())
}

/// Paging through a list.
#[derive(Debug, Deserialize)]
pub(crate) struct Paging {
    #[serde(default)]
    offset: u64,
    #[serde(default = "default_limit")]
    limit: u64,
}

fn default_limit() -> u64 {
    100
}

/// `GET /api/queues/{queue}/dead?offset=&limit=`: what `queue-cli dead list --json` prints.
pub(crate) async fn dead(
    State(dashboard): State<Shared>,
    Path(queue): Path<String>,
    Query(paging): Query<Paging>,
) -> ApiResult {
    let page = dashboard
        .client
        .queue(&queue)?
        .dead_list(paging.offset, paging.limit)
        .await?;
    Ok(Json(admin::dead_page_json(&page)).into_response())
}

/// The query of a job list.
#[derive(Debug, Deserialize)]
pub(crate) struct JobsQuery {
    state: Option<queue_core::JobState>,
    #[serde(default)]
    offset: u64,
    #[serde(default = "default_jobs_limit")]
    limit: u64,
}

fn default_jobs_limit() -> u64 {
    50
}

/// `GET /api/queues/{queue}/jobs?state=&offset=&limit=`: what `queue-cli jobs --json` prints.
pub(crate) async fn jobs(
    State(dashboard): State<Shared>,
    Path(queue): Path<String>,
    Query(query): Query<JobsQuery>,
) -> ApiResult {
    let Some(state) = query.state else {
        let message = "say which jobs: ?state=pending|scheduled|retrying|active|dead|completed";
        return Err(Failure::new(axum::http::StatusCode::BAD_REQUEST, message).into());
    };
    let page = dashboard
        .client
        .queue(&queue)?
        .jobs(state, query.offset, query.limit)
        .await?;
    Ok(Json(page).into_response())
}

/// `GET /api/queues/{queue}/jobs/{id}`: what `queue-cli job --json` prints.
pub(crate) async fn job(State(dashboard): State<Shared>, Path((queue, id)): Path<(String, String)>) -> ApiResult {
    let job = dashboard.client.queue(&queue)?.job(&id).await?;
    Ok(Json(admin::job_json(&job)).into_response())
}

/// `GET /api/history`: the counter samples behind the rate chart, per queue, oldest first.
pub(crate) async fn history(State(dashboard): State<Shared>) -> ApiResult {
    Ok(Json(&dashboard.history).into_response())
}

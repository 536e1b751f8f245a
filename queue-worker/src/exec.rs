//! Handlers in any language: each job runs a shell command.
use std::{process::Stdio, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::Command,
};

use crate::{JobContext, JobError, JobResult};

/// How much of a failed command's stderr is kept as the job's error.
const STDERR_TAIL_LINES: usize = 20;
const STDERR_TAIL_BYTES: usize = 4 * 1024;
/// How long stderr is still read once the command exited: a child it left running may hold
/// stderr open, and the job must not wait for it.
const STDERR_AFTER_EXIT: Duration = Duration::from_millis(100);

/// Runs `sh -c <command>` per job: the payload as JSON on stdin; `QUEUE_JOB_ID`,
/// `QUEUE_JOB_QUEUE`, `QUEUE_JOB_KIND`, `QUEUE_JOB_ATTEMPT` (1 for the first attempt) and
/// `QUEUE_JOB_FENCING_TOKEN` (see [`JobContext::fencing_token`]) in the environment. Exit status 0 completes the job; any other fails the attempt with the last
/// lines of stderr. The worker's settings (`QUEUE_REDIS_URL`, `QUEUE_PREFIX`, `QUEUE_TLS_CA`)
/// are removed from the environment, so a command never sees the Redis password. The job ends
/// when the command exits: its process group is then killed, so children it left in the
/// background do not outlive it (nor do those of a cancelled or timed-out job).
#[derive(Debug, Clone)]
pub struct ExecHandler {
    command: Arc<str>,
}

impl ExecHandler {
    /// A handler running `command` through `sh -c`.
    pub fn new(command: impl Into<String>) -> Self {
        ExecHandler {
            command: command.into().into(),
        }
    }

    /// Runs one job.
    pub async fn run(&self, ctx: JobContext) -> JobResult {
        let payload = ctx
            .envelope()
            .payload_json()
            .map_err(|e| JobError::permanent(format!("payload is not representable as JSON: {e}")))?;
        let mut stdin_bytes = serde_json::to_vec(&payload).map_err(JobError::permanent)?;
        stdin_bytes.push(b'\n');

        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(&*self.command)
            .env("QUEUE_JOB_ID", ctx.id())
            .env("QUEUE_JOB_QUEUE", ctx.queue())
            .env("QUEUE_JOB_KIND", ctx.kind())
            .env("QUEUE_JOB_ATTEMPT", ctx.attempt().to_string())
            .env("QUEUE_JOB_FENCING_TOKEN", ctx.fencing_token().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in queue_core::env::ALL {
            command.env_remove(name);
        }
        // The W3C name for a trace context carried in the environment, so that a command that
        // traces joins the job's trace.
        match ctx.trace_parent() {
            Some(traceparent) => command.env("TRACEPARENT", traceparent),
            None => command.env_remove("TRACEPARENT"),
        };
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| JobError::retry(format!("cannot start `sh -c`: {e}")))?;
        let _group = ProcessGroup(child.id());

        let mut stdin = child.stdin.take().expect("piped stdin");
        // Written beside the wait: a command that never reads stdin must not block us.
        let feed = tokio::spawn(async move {
            let _ = stdin.write_all(&stdin_bytes).await;
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let mut tail = Vec::new();
        let status = {
            let read = read_tail(&mut stderr, &mut tail);
            tokio::pin!(read);
            // The job ends with the command, not with its stderr: a child left in the
            // background can hold stderr open for as long as it runs.
            let (status, read_all) = tokio::select! {
                status = child.wait() => (status, false),
                () = &mut read => (child.wait().await, true),
            };
            if !read_all {
                // What the command wrote just before exiting may still be in the pipe.
                let _ = tokio::time::timeout(STDERR_AFTER_EXIT, read).await;
            }
            status
        };
        feed.abort();
        let status = status.map_err(|e| JobError::retry(format!("waiting for the command failed: {e}")))?;
        if status.success() {
            return Ok(());
        }
        let what = match status.code() {
            Some(code) => format!("exit status {code}"),
            None => format!("killed by signal {}", signal_of(&status)),
        };
        let tail = stderr_tail(&tail);
        Err(JobError::retry(if tail.is_empty() {
            what
        } else {
            format!("{what}: {tail}")
        }))
    }
}

/// Reads `stderr` to its end into `tail`, keeping about its last [`STDERR_TAIL_BYTES`].
async fn read_tail(stderr: &mut tokio::process::ChildStderr, tail: &mut Vec<u8>) {
    let mut chunk = [0u8; 8192];
    while let Ok(n) = stderr.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > 4 * STDERR_TAIL_BYTES {
            tail.drain(..tail.len() - STDERR_TAIL_BYTES);
        }
    }
}

fn stderr_tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let mut tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n");
    if tail.len() > STDERR_TAIL_BYTES {
        let mut start = tail.len() - STDERR_TAIL_BYTES;
        while !tail.is_char_boundary(start) {
            start += 1;
        }
        tail = tail[start..].to_owned();
    }
    tail
}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.signal().unwrap_or(0)
}

#[cfg(not(unix))]
fn signal_of(_: &std::process::ExitStatus) -> i32 {
    0
}

/// Kills the command's whole process group when the job ends early (timeout, lost lease,
/// shutdown): `sh -c` may have started children that killing `sh` alone would orphan.
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.0 {
            // SAFETY: kill(2) with a negative pid signals the group we created; no memory is shared.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
    }
}

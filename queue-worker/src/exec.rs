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
/// How long stdout and stderr are still read once the command exited: a child it left running
/// may hold them open, and the job must not wait for it.
const OUTPUT_AFTER_EXIT: Duration = Duration::from_millis(100);

/// The most of a command's stdout kept as its job's result (64 KiB). Output beyond it is read
/// and dropped: the result is then the first 64 KiB as a JSON string (not parsed), and the
/// worker logs a warning.
pub const MAX_STDOUT_RESULT: usize = 64 * 1024;

/// Runs `sh -c <command>` per job: the payload as JSON on stdin; `QUEUE_JOB_ID`,
/// `QUEUE_JOB_QUEUE`, `QUEUE_JOB_KIND`, `QUEUE_JOB_ATTEMPT` (1 for the first attempt) and
/// `QUEUE_JOB_FENCING_TOKEN` (see [`JobContext::fencing_token`]) in the environment. Exit status
/// 0 completes the job, with its stdout as the job's result (JSON if stdout is JSON, else the
/// text as a JSON string; nothing for empty output; at most [`MAX_STDOUT_RESULT`] bytes); any
/// other status fails the attempt with the last lines of stderr. The worker's settings (`QUEUE_REDIS_URL`, `QUEUE_PREFIX`, `QUEUE_TLS_CA`)
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

    /// Runs one job; its result is the command's stdout (see [`ExecHandler`]).
    pub async fn run(&self, ctx: JobContext) -> JobResult<Option<serde_json::Value>> {
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
            .stdout(Stdio::piped())
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
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut tail = Vec::new();
        let mut head = Vec::new();
        let mut stdout_len = 0;
        let status = {
            let read = async {
                tokio::join!(
                    read_tail(&mut stderr, &mut tail),
                    read_head(&mut stdout, &mut head, &mut stdout_len)
                )
            };
            tokio::pin!(read);
            // The job ends with the command, not with its output: a child left in the
            // background can hold stdout or stderr open for as long as it runs.
            let (status, read_all) = tokio::select! {
                status = child.wait() => (status, false),
                _ = &mut read => (child.wait().await, true),
            };
            if !read_all {
                // What the command wrote just before exiting may still be in the pipes.
                let _ = tokio::time::timeout(OUTPUT_AFTER_EXIT, read).await;
            }
            status
        };
        feed.abort();
        let status = status.map_err(|e| JobError::retry(format!("waiting for the command failed: {e}")))?;
        if status.success() {
            if stdout_len > MAX_STDOUT_RESULT {
                tracing::warn!(
                    bytes = stdout_len,
                    limit = MAX_STDOUT_RESULT,
                    "the command's stdout exceeds the result limit; keeping its first bytes as text"
                );
            }
            return Ok(stdout_result(&head, stdout_len));
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

/// Reads `stdout` to its end, keeping its first [`MAX_STDOUT_RESULT`] bytes in `head` and
/// counting all of them in `len` (the rest is drained so the command never blocks on the pipe).
async fn read_head(stdout: &mut tokio::process::ChildStdout, head: &mut Vec<u8>, len: &mut usize) {
    let mut chunk = [0u8; 8192];
    while let Ok(n) = stdout.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        *len += n;
        let room = MAX_STDOUT_RESULT.saturating_sub(head.len());
        head.extend_from_slice(&chunk[..n.min(room)]);
    }
}

/// A command's stdout as its job's result: none when empty; JSON if it parses; else text.
fn stdout_result(head: &[u8], len: usize) -> Option<serde_json::Value> {
    let text = String::from_utf8_lossy(head);
    if len > head.len() {
        // Cut short: parsing it would fail or mislead, so it is kept as the text it is.
        return Some(text.into_owned().into());
    }
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        return None;
    }
    Some(serde_json::from_str(text).unwrap_or_else(|_| text.to_owned().into()))
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

#[cfg(test)]
mod tests {
    use super::{stdout_result, MAX_STDOUT_RESULT};
    use serde_json::json;

    #[test]
    fn stdout_is_kept_as_json_when_it_is_json_and_as_text_otherwise() {
        assert_eq!(stdout_result(b"", 0), None);
        assert_eq!(stdout_result(b"\n", 1), None);
        assert_eq!(stdout_result(b"{\"sent\": 3}\n", 12), Some(json!({"sent": 3})));
        assert_eq!(stdout_result(b"42\n", 3), Some(json!(42)));
        assert_eq!(stdout_result(b"done, 3 sent\n", 13), Some(json!("done, 3 sent")));
        let head = vec![b'7'; MAX_STDOUT_RESULT];
        let cut = stdout_result(&head, MAX_STDOUT_RESULT + 1).unwrap();
        assert_eq!(
            cut.as_str().map(str::len),
            Some(MAX_STDOUT_RESULT),
            "text, not a number"
        );
    }
}

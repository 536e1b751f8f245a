//! Printing: to stdout without panicking on a closed pipe, errors in one line on stderr.
use std::{
    io::{self, Write},
    process::ExitCode,
};

/// Writes one line to stdout.
pub(crate) fn line(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes text as is to stdout.
pub(crate) fn text(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// A table in the one style every command prints, with these column headers.
pub(crate) fn table<'a>(header: impl IntoIterator<Item = &'a str>) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::ASCII_FULL_CONDENSED)
        .set_header(header.into_iter().collect::<Vec<_>>());
    table
}

/// A spinner on stderr with `template` (indicatif's), when stderr is a terminal; hidden
/// otherwise, so pipes and logs stay clean.
pub(crate) fn spinner(template: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// Writes a value as pretty JSON.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// `queue-cli … | head` closing the pipe early is not an error.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(io::ErrorKind::BrokenPipe))
    })
}

/// Prints `error: …` (the whole cause chain, one line) and returns exit code 1.
pub(crate) fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::from(1)
}

/// A duration for people: `0s`, `850ms`, `12s`, `3m 4s`, `2h 5m`.
pub(crate) fn duration_ms(ms: u64) -> String {
    match ms {
        0 => "0s".into(),
        ms if ms < 1_000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0).replace(".0s", "s"),
        ms if ms < 3_600_000 => format!("{}m {}s", ms / 60_000, (ms % 60_000) / 1_000),
        ms => format!("{}h {}m", ms / 3_600_000, (ms % 3_600_000) / 60_000),
    }
}

/// A Unix-ms timestamp as RFC 3339 (UTC, milliseconds), for events.
pub(crate) fn timestamp_ms(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(time) => time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => format!("{ms} ms"),
    }
}

/// A Unix-ms timestamp as RFC 3339 (UTC, seconds).
pub(crate) fn timestamp(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(time) => time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => format!("{ms} ms"),
    }
}

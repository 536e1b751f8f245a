//! A queue's flow control: the limits `lua/pop.lua` applies across all workers.
use std::time::Duration;

use serde::Serialize;

use crate::{millis, Error, Rate, Result};

/// A queue's limits, applied by the fetch script across all workers: at most `rate` jobs
/// started per window, at most `concurrency` jobs active at once, and the same per group for the
/// jobs that carry one ([`NewJob::group`](crate::NewJob::group)). `None`: no such limit.
///
/// ```
/// use queue_core::{Limits, Rate};
/// let limits = Limits {
///     rate: Some("100/1s".parse().unwrap()),
///     group_concurrency: Some(2),
///     ..Limits::default()
/// };
/// assert_eq!(limits.to_string(), "rate 100/1s, group concurrency 2");
/// assert_eq!(Limits::default().to_string(), "none");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// At most this many jobs started per window.
    pub rate: Option<Rate>,
    /// At most this many jobs active (leased) at once.
    pub concurrency: Option<u32>,
    /// At most this many jobs of one group started per window.
    pub group_rate: Option<Rate>,
    /// At most this many jobs of one group active at once.
    pub group_concurrency: Option<u32>,
}

impl std::fmt::Display for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(rate) = self.rate {
            parts.push(format!("rate {rate}"));
        }
        if let Some(concurrency) = self.concurrency {
            parts.push(format!("concurrency {concurrency}"));
        }
        if let Some(rate) = self.group_rate {
            parts.push(format!("group rate {rate}"));
        }
        if let Some(concurrency) = self.group_concurrency {
            parts.push(format!("group concurrency {concurrency}"));
        }
        if parts.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&parts.join(", "))
    }
}

impl Limits {
    /// The limits as the scripts store them (rates "N/window_ms", concurrencies "N"): rate,
    /// concurrency, group rate, group concurrency.
    pub(crate) fn parse(fields: [&str; 4]) -> Result<Self> {
        let unexpected = || Error::UnexpectedReply {
            script: crate::Command::Limits.name().into(),
            detail: format!("limits {fields:?}"),
        };
        let rate = |text: &str| match text.split_once('/') {
            None if text.is_empty() => Ok(None),
            Some((limit, ms)) => {
                let limit = limit.parse().map_err(|_| unexpected())?;
                let ms = ms.parse().map_err(|_| unexpected())?;
                Ok(Some(Rate::new(limit, Duration::from_millis(ms))?))
            }
            None => Err(unexpected()),
        };
        let concurrency = |text: &str| match text {
            "" => Ok(None),
            n => n.parse().map(Some).map_err(|_| unexpected()),
        };
        Ok(Limits {
            rate: rate(fields[0])?,
            concurrency: concurrency(fields[1])?,
            group_rate: rate(fields[2])?,
            group_concurrency: concurrency(fields[3])?,
        })
    }

    /// The value of the `rate` field for the limits script ("" removes it).
    pub(crate) fn rate_field(rate: Option<Rate>) -> String {
        rate.map_or(String::new(), |rate| {
            format!("{}/{}", rate.limit(), millis(rate.window()))
        })
    }

    /// The value of the `concurrency` field ("" removes it); 0 is refused.
    pub(crate) fn concurrency_field(concurrency: Option<u32>) -> Result<String> {
        match concurrency {
            Some(0) => Err(Error::InvalidLimit("a concurrency limit must be at least 1".into())),
            Some(n) => Ok(n.to_string()),
            None => Ok(String::new()),
        }
    }
}

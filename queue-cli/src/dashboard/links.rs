//! Where links point. Every link, form and redirect is relative to the page it is on, so the
//! dashboard works behind a reverse proxy under any sub-path: one that strips the prefix needs
//! nothing more, and one that passes it on names it with `--base-path /prefix`.
use std::convert::Infallible;

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{request::Parts, StatusCode, Uri},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What a path segment may keep as is; everything else (a job id's `/`, `?`, `#`) is encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b':');

/// The way from the requested page back to the dashboard's root, as a relative reference
/// (`./` on the overview, `../` on a queue page, `../../../` on a job page).
#[derive(Debug, Clone)]
pub(crate) struct Root(String);

impl Root {
    /// The root as seen from `path`, a path of the dashboard (after any `--base-path`).
    pub(crate) fn of(path: &str) -> Self {
        match path.matches('/').count() {
            0 | 1 => Root("./".into()),
            slashes => Root("../".repeat(slashes - 1)),
        }
    }

    /// A link to `target`, a path under the root without its leading `/` (`""` is the
    /// overview).
    pub(crate) fn to(&self, target: &str) -> String {
        format!("{}{target}", self.0)
    }

    /// A link to a queue's page.
    pub(crate) fn queue(&self, queue: &str) -> String {
        self.to(&queue_path(queue))
    }

    /// A link to a job's page.
    pub(crate) fn job(&self, queue: &str, id: &str) -> String {
        self.to(&format!("{}/jobs/{}", queue_path(queue), segment(id)))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Root {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Root::of(parts.uri.path()))
    }
}

/// A queue's page, under the root.
fn queue_path(queue: &str) -> String {
    format!("queues/{}", segment(queue))
}

/// `text` as one path segment (or query value): percent-encoded.
pub(crate) fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// Checks `--base-path`: `/` and nothing (no sub-path), or `/prefix` of plain segments, kept
/// without its trailing `/`.
pub(crate) fn parse_base_path(text: &str) -> Result<String, String> {
    let trimmed = text.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
    match trimmed.strip_prefix('/') {
        Some(rest) if rest.split('/').all(plain) => Ok(trimmed.to_owned()),
        _ => Err(format!(
            "{text:?} is not a base path: say /prefix (segments of letters, digits, - _ . ~)"
        )),
    }
}

/// Serves the dashboard under `--base-path`: a request under it loses the prefix before the
/// routes see it, the prefix alone is sent to `prefix/` (relative links need the slash), and
/// anything else is not found.
pub(crate) async fn under_base_path(State(base): State<String>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == base {
        return Redirect::to(&format!("{base}/")).into_response();
    }
    let Some(rest) = path.strip_prefix(base.as_str()).filter(|rest| rest.starts_with('/')) else {
        return (
            StatusCode::NOT_FOUND,
            format!("this dashboard is served under {base}/\n"),
        )
            .into_response();
    };
    let rest = match request.uri().query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    match rest.parse::<Uri>() {
        Ok(uri) => {
            *request.uri_mut() = uri;
            next.run(request).await
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_as_many_steps_up_as_the_page_is_deep() {
        assert_eq!(Root::of("/").to(""), "./");
        assert_eq!(Root::of("/queues/emails").to("assets/style.css"), "../assets/style.css");
        assert_eq!(
            Root::of("/queues/emails/jobs/a%2Fb").queue("emails"),
            "../../../queues/emails"
        );
        assert_eq!(
            Root::of("/queues/emails/").job("e", "a/b?c"),
            "../../queues/e/jobs/a%2Fb%3Fc"
        );
    }

    #[test]
    fn a_base_path_is_a_plain_absolute_path() {
        assert_eq!(parse_base_path("/ops/queues/").unwrap(), "/ops/queues");
        assert_eq!(parse_base_path("/").unwrap(), "");
        assert!(parse_base_path("ops").is_err());
        assert!(parse_base_path("/a//b").is_err());
        assert!(parse_base_path("/a?b").is_err());
    }
}

//! Who may use the dashboard: the token (when set) on every request, and for every POST a
//! same-origin check plus the per-process form token, so another site cannot make a signed-in
//! browser purge a queue.
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};

use super::Shared;

/// The cookie that carries the token after the first `?token=` visit.
const COOKIE: &str = "queue_dashboard_token";

/// The dashboard's secrets.
pub(crate) struct Access {
    token: Option<String>,
    /// The token in hex: a cookie value needs no quoting whatever the token holds.
    cookie: Option<String>,
    /// Put in every form and checked on every POST; new for each dashboard process.
    csrf: String,
}

impl Access {
    pub(crate) fn new(token: Option<String>) -> Self {
        Access {
            cookie: token.as_deref().map(hex),
            token,
            csrf: format!("{:032x}", rand::random::<u128>()),
        }
    }

    /// The value forms carry in their `csrf` field.
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether a submitted form token is this process's.
    pub(crate) fn csrf_ok(&self, submitted: &str) -> bool {
        same_secret(submitted, &self.csrf)
    }

    fn token_in(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else { return true };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='));
        let cookie_token = self.cookie.as_deref().unwrap_or_default();
        bearer.is_some_and(|given| same_secret(given, token))
            || cookie.into_iter().any(|given| same_secret(given, cookie_token))
    }
}

/// The middleware in front of every route.
pub(crate) async fn check(State(dashboard): State<Shared>, request: Request, next: Next) -> Response {
    let access = &dashboard.access;
    if !access.token_in(request.headers()) {
        return match (request.method(), token_from_query(&request)) {
            // The first visit with ?token=: keep it in a cookie and drop it from the address bar.
            (&Method::GET, Some((given, rest))) if access.token.as_deref().is_some_and(|t| same_secret(&given, t)) => {
                let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", hex(&given));
                let mut response = Redirect::to(&rest).into_response();
                if let Ok(value) = cookie.parse() {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                }
                response
            }
            _ => (
                StatusCode::UNAUTHORIZED,
                "this dashboard needs its token: open it once with ?token=<token>, \
                 or send Authorization: Bearer <token>\n",
            )
                .into_response(),
        };
    }
    if request.method() == Method::POST && !same_origin(request.headers()) {
        return (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response();
    }
    next.run(request).await
}

/// The `token` query parameter, and the request's path and query without it.
fn token_from_query(request: &Request) -> Option<(String, String)> {
    let uri = request.uri();
    let query = uri.query()?;
    let mut token = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.strip_prefix("token=") {
            Some(value) => {
                token = Some(
                    percent_encoding::percent_decode_str(value)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            }
            None => kept.push(pair),
        }
    }
    // Relative, like every link: behind a proxy the path seen here may lack its prefix.
    let path = super::links::Root::of(uri.path()).to(uri.path().trim_start_matches('/'));
    let rest = match kept.is_empty() {
        true => path,
        false => format!("{path}?{}", kept.join("&")),
    };
    Some((token?, rest))
}

/// A POST must come from a page of this dashboard: browsers send `Origin` (and
/// `Sec-Fetch-Site`) with every form post, so either one naming another site refuses it.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (Some(origin), Some(host)) => origin.split_once("://").is_some_and(|(_, authority)| authority == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Compares two secrets in time that does not depend on where they first differ.
fn same_secret(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    given.len() == expected.len() && given.iter().zip(expected).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn a_post_from_another_site_is_refused() {
        assert!(same_origin(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("sec-fetch-site", "cross-site"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
    }

    #[test]
    fn the_token_comes_from_the_bearer_header_or_the_cookie() {
        let access = Access::new(Some("s3cret".into()));
        assert!(access.token_in(&headers(&[("authorization", "Bearer s3cret")])));
        assert!(access.token_in(&headers(&[("cookie", "a=b; queue_dashboard_token=733363726574")])));
        assert!(!access.token_in(&headers(&[("cookie", "queue_dashboard_token=s3cret")])));
        assert!(!access.token_in(&headers(&[])));
        assert!(Access::new(None).token_in(&headers(&[])));
    }
}

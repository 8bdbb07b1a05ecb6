//! Which requests come from this service's own clients. Any web page a user visits can
//! send requests to a local server (a cross-site `fetch`, a form), or read its answers
//! once its own domain is made to resolve to 127.0.0.1 (DNS rebinding). Both are refused:
//!
//! - `Host` must name this service: `localhost`, a loopback IP address, or the address
//!   it listens on (any IP address when it listens on all of them), with its port. A
//!   rebinding page's requests carry the page's own domain name. With `--token-file` this
//!   check is off: such a page cannot know the token, and a service reached by name from
//!   other machines needs it.
//! - `Origin`, when a browser sends one, must be the service's own (`http://` and the
//!   `Host`) or one given with `--allow-origin`; those also get CORS headers, so that
//!   their pages can read the answers.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::uri::Authority;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;

use super::http::error;

/// The `Host` and `Origin` checks of one service.
#[derive(Debug)]
pub struct Guard {
    /// The address the service listens on.
    addr: SocketAddr,
    /// Whether `Host` is checked (not with a token).
    check_host: bool,
    /// `--allow-origin`, as [`parse_origin`] wrote them.
    allowed_origins: Vec<String>,
}

/// `--allow-origin`: `scheme://host[:port]`, lower case, without a path or a final `/`.
pub fn parse_origin(raw: &str) -> Result<String, String> {
    let origin = raw.trim_end_matches('/').to_ascii_lowercase();
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or("an origin starts with http:// or https://")?;
    if rest.is_empty() || rest.contains('/') || Authority::from_str(rest).is_err() {
        return Err("an origin is scheme://host[:port], with no path".to_string());
    }
    Ok(origin)
}

impl Guard {
    /// The guard of a service on `addr`.
    pub fn new(addr: SocketAddr, token: bool, allowed_origins: Vec<String>) -> Self {
        Guard {
            addr,
            check_host: !token,
            allowed_origins,
        }
    }

    /// The origins given with `--allow-origin`.
    pub fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    /// The JSON 403 of a request this service's clients would not send (a 400 where it
    /// names two hosts or two origins); `None` for others. `target` is the request's URI:
    /// in absolute form (`GET http://evil.example/v1/health`) its host is the request's
    /// (RFC 9112, 3.2.2), whatever `Host` says.
    pub fn refusal(&self, target: &Uri, headers: &HeaderMap) -> Option<Response> {
        // Which of two would a proxy, a cache or this check read? (RFC 9110, 7.2: a 400.)
        for name in [header::HOST, header::ORIGIN] {
            if headers.get_all(&name).iter().count() > 1 {
                return Some(error(
                    StatusCode::BAD_REQUEST,
                    format!("the request has more than one {name} header"),
                ));
            }
        }
        let host = match target.authority() {
            Some(authority) => authority.as_str(),
            None => headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
        };
        if self.check_host && !self.is_own_host(host) {
            return Some(error(
                StatusCode::FORBIDDEN,
                format!(
                    "Host {host:?} is not this service's address (localhost, a loopback or \
                     listening IP address, port {}); with --token-file any Host is served",
                    self.addr.port()
                ),
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
            let own = origin
                .strip_prefix("http://")
                .is_some_and(|o| o.eq_ignore_ascii_case(host));
            if !own && !self.allowed_origins.contains(&origin) {
                return Some(error(
                    StatusCode::FORBIDDEN,
                    format!(
                        "requests from the web page at {origin:?} are refused; \
                         --allow-origin {origin} lets them in"
                    ),
                ));
            }
        }
        None
    }

    fn is_own_host(&self, host: &str) -> bool {
        // `Host: evil.example@127.0.0.1:PORT` parsed as an authority with user info, and
        // passed as 127.0.0.1; no client sends user info in `Host` (RFC 9110, 7.2).
        if host.contains('@') {
            return false;
        }
        let Ok(authority) = Authority::from_str(host) else {
            return false;
        };
        if authority.port_u16().unwrap_or(80) != self.addr.port() {
            return false;
        }
        let name = authority.host();
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback() || ip == self.addr.ip() || self.addr.ip().is_unspecified(),
            // A name: only a rebinding page or a proxy would send one.
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    #[test]
    fn own_hosts_and_origins_pass_and_others_are_refused() {
        let guard = Guard::new(
            "127.0.0.1:8700".parse().unwrap(),
            false,
            vec![parse_origin("https://Tool.example/").unwrap()],
        );
        let ok = |host: &str, origin: Option<&str>| {
            guard
                .refusal(&Uri::from_static("/v1/health"), &headers(host, origin))
                .is_none()
        };
        assert!(ok("127.0.0.1:8700", None));
        assert!(ok("localhost:8700", Some("http://localhost:8700")));
        assert!(ok("[::1]:8700", None));
        assert!(!ok("evil.example@127.0.0.1:8700", None));
        // An absolute-form target's host is the request's, whatever Host says.
        let absolute = |target: &'static str| {
            guard
                .refusal(&Uri::from_static(target), &headers("127.0.0.1:8700", None))
                .map(|r| r.status())
        };
        assert_eq!(
            absolute("http://evil.example/v1/health"),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(absolute("http://127.0.0.1:8700/v1/health"), None);
        // Two Host or two Origin headers: which one counts? A 400.
        let mut twice = headers("127.0.0.1:8700", Some("http://127.0.0.1:8700"));
        twice.append(header::HOST, HeaderValue::from_static("evil.example"));
        let refused = guard.refusal(&Uri::from_static("/"), &twice).unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let mut origins = headers("127.0.0.1:8700", Some("http://127.0.0.1:8700"));
        origins.append(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        let refused = guard.refusal(&Uri::from_static("/"), &origins).unwrap();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(!ok("127.0.0.1:8700@evil.example", None));
        assert!(ok("127.0.0.1:8700", Some("https://tool.example")));
        assert!(!ok("evil.example:8700", None), "a rebinding page's name");
        assert!(!ok("127.0.0.1:9999", None), "another port");
        assert!(!ok("127.0.0.1", None), "port 80 implied");
        assert!(!ok("10.0.0.1:8700", None), "not the listening address");
        assert!(!ok("", None));
        assert!(!ok("127.0.0.1:8700", Some("http://evil.example")));
        assert!(!ok("127.0.0.1:8700", Some("null")));
        assert!(!ok("127.0.0.1:8700", Some("https://127.0.0.1:8700")));

        let all = Guard::new("0.0.0.0:8700".parse().unwrap(), false, Vec::new());
        assert!(
            all.refusal(
                &Uri::from_static("/v1/health"),
                &headers("192.168.1.9:8700", None)
            )
            .is_none()
        );
        assert!(
            all.refusal(
                &Uri::from_static("/v1/health"),
                &headers("host.lan:8700", None)
            )
            .is_some()
        );
        let token = Guard::new("0.0.0.0:8700".parse().unwrap(), true, Vec::new());
        assert!(
            token
                .refusal(
                    &Uri::from_static("/v1/health"),
                    &headers("host.lan:8700", None)
                )
                .is_none()
        );
        assert!(
            token
                .refusal(
                    &Uri::from_static("/v1/health"),
                    &headers("host.lan:8700", Some("http://evil.example"))
                )
                .is_some()
        );
    }

    #[test]
    fn origins_are_checked_when_given() {
        assert_eq!(
            parse_origin("HTTP://a.example:8080/").as_deref(),
            Ok("http://a.example:8080")
        );
        assert!(parse_origin("a.example").is_err());
        assert!(parse_origin("http://a.example/path").is_err());
        assert!(parse_origin("http://").is_err());
    }
}

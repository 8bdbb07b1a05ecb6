//! A broker's URL as messages show it: without its password, which a log or a terminal
//! shared in a bug report must not leak. Used by every message of `dist` and `consume`
//! that names the broker.

/// `url` with the password of its user info (`user:PW@`, `:PW@`) and of a `pass=` or
/// `password=` query parameter (Redis over a Unix socket) replaced with `***`; the user
/// name, host, port, path and other parameters stay. It reads the text, not a parsed URL,
/// so that a URL the client refused is redacted too, and the user info ends at the last
/// `@`, so that a password with an unescaped `@`, `/`, `?` or `:` is never shown in part.
pub fn redacted_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let mut shown = scheme.to_string();
    let rest = match rest.rsplit_once('@') {
        Some((user_info, rest)) => {
            match user_info.split_once(':') {
                Some((user, _password)) => {
                    shown.push_str(user);
                    shown.push_str(":***");
                }
                None => shown.push_str(user_info),
            }
            shown.push('@');
            rest
        }
        None => rest,
    };
    let Some((place, query)) = rest.split_once('?') else {
        shown.push_str(rest);
        return shown;
    };
    shown.push_str(place);
    shown.push('?');
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _)) if name == "pass" || name == "password" => format!("{name}=***"),
            _ => param.to_string(),
        })
        .collect();
    shown.push_str(&params.join("&"));
    shown
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn the_password_is_redacted_and_the_rest_stays() {
        for (url, shown) in [
            (
                "redis://:pw@127.0.0.1:16391",
                "redis://:***@127.0.0.1:16391",
            ),
            (
                "redis://user:pw@broker:6379/2",
                "redis://user:***@broker:6379/2",
            ),
            (
                "amqp://guest:guest@rabbit:5672/%2f",
                "amqp://guest:***@rabbit:5672/%2f",
            ),
            (
                "amqps://user:pw@rabbit/vhost?heartbeat=10",
                "amqps://user:***@rabbit/vhost?heartbeat=10",
            ),
            // No password: nothing to hide.
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("amqp://guest@rabbit/%2f", "amqp://guest@rabbit/%2f"),
            ("not a url", "not a url"),
            ("", ""),
            // Percent-encoded '@' and ':' are part of the password.
            (
                "redis://user:p%40ss%3Aword@host:1",
                "redis://user:***@host:1",
            ),
            // Unescaped, they still are: the user info ends at the last '@'.
            ("redis://user:p@ss:w/rd@host:1", "redis://user:***@host:1"),
            ("redis://:a?b@host", "redis://:***@host"),
            // An empty password is not told from another.
            ("redis://user:@host", "redis://user:***@host"),
            // A Unix socket's password is a query parameter.
            (
                "redis+unix:///run/redis.sock?db=1&pass=pw",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "unix:///run/redis.sock?password=pw",
                "unix:///run/redis.sock?password=***",
            ),
            // Without `//` (a URL the AMQP parser refuses, quoting it).
            ("amqp:user:pw@host", "amqp:***@host"),
        ] {
            assert_eq!(redacted_url(url), shown, "{url}");
        }
    }
}

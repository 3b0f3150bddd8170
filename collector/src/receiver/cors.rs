//! Cross-origin resource sharing for the OTLP/HTTP receiver, as the
//! Collector's `confighttp` sets up `rs/cors` (1.11): credentials allowed,
//! the request's origin echoed (`*` when `*` is an allowed origin), methods
//! GET, POST and HEAD, a
//! preflight (`OPTIONS` with `Access-Control-Request-Method`) answered 204
//! on any path before routing, and `Vary` always set. An origin, method or
//! header that is not allowed gets an answer without `Access-Control-*`
//! headers, which the browser treats as a refusal.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use tern_config::components::CorsConfig;

/// Methods a cross-origin request may use (rs/cors's default).
const METHODS: [Method; 3] = [Method::GET, Method::POST, Method::HEAD];
/// Request headers always allowed (lower case).
const ALWAYS: [&str; 5] = [
    "accept",
    "accept-language",
    "content-type",
    "content-language",
    "origin",
];

/// The CORS policy of one HTTP receiver.
#[derive(Debug)]
pub struct Cors {
    /// Lower-cased origin patterns; `*` matches any run of characters.
    origins: Vec<String>,
    /// `*` is one of them: every origin is allowed and told `*`.
    any_origin: bool,
    /// Lower-cased allowed request headers, [`ALWAYS`] included.
    headers: Vec<String>,
    any_header: bool,
    exposed: Option<HeaderValue>,
    max_age: u32,
}

/// Whether `text` matches `pattern`, where each `*` stands for any run of
/// characters (none included).
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        // No `*`: the prefix must be the whole text.
        return rest.is_empty();
    };
    for part in parts {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl Cors {
    /// The policy for `config`; `None` when no origin is allowed (CORS
    /// off, as in the Collector).
    pub fn new(config: &CorsConfig) -> Option<Cors> {
        if config.allowed_origins.is_empty() {
            if !config.allowed_headers.is_empty() {
                tracing::warn!(
                    "the CORS configuration lists allowed_headers but no allowed_origins, and is therefore ignored"
                );
            }
            return None;
        }
        let mut headers: Vec<String> = ALWAYS.iter().map(|h| h.to_string()).collect();
        if config.allowed_headers.is_empty() {
            headers.push("x-requested-with".into());
        }
        headers.extend(
            config
                .allowed_headers
                .iter()
                .map(|h| h.to_ascii_lowercase()),
        );
        let exposed = (!config.exposed_headers.is_empty())
            .then(|| HeaderValue::from_str(&config.exposed_headers.join(", ")).ok())
            .flatten();
        Some(Cors {
            origins: config
                .allowed_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            any_origin: config.allowed_origins.iter().any(|o| o == "*"),
            any_header: config.allowed_headers.iter().any(|h| h == "*"),
            headers,
            exposed,
            max_age: config.max_age,
        })
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.origins.iter().any(|p| glob(p, &origin))
    }

    fn method_allowed(method: &str) -> bool {
        METHODS
            .iter()
            .any(|m| m.as_str().eq_ignore_ascii_case(method))
    }

    /// The answer to `req` when it is a preflight; `None` otherwise.
    pub fn preflight<B: Default>(&self, req: &http::Request<impl Sized>) -> Option<Response<B>> {
        let requested = req.headers().get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
        if req.method() != Method::OPTIONS {
            return None;
        }
        let mut response = Response::new(B::default());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let out = response.headers_mut();
        for vary in [
            "origin",
            "access-control-request-method",
            "access-control-request-headers",
        ] {
            out.append(header::VARY, HeaderValue::from_static(vary));
        }
        let Some(origin) = self.allowed_origin(req.headers().get(header::ORIGIN)) else {
            return Some(response);
        };
        let Some(method) = requested.to_str().ok().filter(|m| Self::method_allowed(m)) else {
            return Some(response);
        };
        let asked: Vec<&str> = req
            .headers()
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let allowed =
            |h: &&str| self.any_header || self.headers.iter().any(|a| a.eq_ignore_ascii_case(h));
        if !asked.iter().all(allowed) {
            return Some(response);
        }
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if let Ok(m) = HeaderValue::from_str(&method.to_ascii_uppercase()) {
            out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m);
        }
        if !asked.is_empty()
            && let Ok(h) = HeaderValue::from_str(&asked.join(", "))
        {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, h);
        }
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        if self.max_age > 0 {
            out.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(self.max_age),
            );
        }
        Some(response)
    }

    /// The `Access-Control-Allow-Origin` for a request from `origin`, when
    /// that origin is allowed.
    fn allowed_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        let text = origin.to_str().ok().filter(|o| !o.is_empty())?;
        if self.any_origin {
            return Some(HeaderValue::from_static("*"));
        }
        self.origin_allowed(text).then(|| origin.clone())
    }

    /// Adds the CORS headers an actual request of `method` from `origin`
    /// gets to `response`.
    pub fn decorate(
        &self,
        method: &Method,
        origin: Option<&HeaderValue>,
        response: &mut HeaderMap,
    ) {
        // rs/cors leaves an OPTIONS that is no preflight alone.
        if method == Method::OPTIONS {
            return;
        }
        response.append(header::VARY, HeaderValue::from_static("origin"));
        if !Self::method_allowed(method.as_str()) {
            return;
        }
        let Some(origin) = self.allowed_origin(origin) else {
            return;
        };
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if let Some(e) = &self.exposed {
            response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
        response.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_stand_for_any_run_of_characters() {
        assert!(glob("*", "https://a.example"));
        assert!(glob("https://*.example.com", "https://a.b.example.com"));
        assert!(!glob("https://*.example.com", "https://example.com"));
        assert!(glob("http://*:*", "http://localhost:3000"));
        assert!(!glob("http://a*a", "http://a"));
        assert!(glob("http://exact", "http://exact"));
        assert!(!glob("http://exact", "http://exact.evil"));
    }

    #[test]
    fn origins_compare_without_case() {
        let cors = Cors::new(&CorsConfig {
            allowed_origins: vec!["https://App.example".into()],
            ..CorsConfig::default()
        })
        .unwrap();
        assert!(cors.origin_allowed("https://app.EXAMPLE"));
        assert!(!cors.origin_allowed("https://other.example"));
    }

    #[test]
    fn a_star_origin_is_answered_with_a_star() {
        let cors = Cors::new(&CorsConfig {
            allowed_origins: vec!["*".into()],
            ..CorsConfig::default()
        })
        .unwrap();
        let origin = HeaderValue::from_static("http://localhost");
        assert_eq!(cors.allowed_origin(Some(&origin)).unwrap(), "*");
        assert_eq!(cors.allowed_origin(None), None);
    }

    #[test]
    fn no_origins_means_no_cors() {
        assert!(
            Cors::new(&CorsConfig {
                allowed_headers: vec!["x-a".into()],
                ..CorsConfig::default()
            })
            .is_none()
        );
    }
}

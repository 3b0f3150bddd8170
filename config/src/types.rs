//! Small value types that appear in many component configs: durations
//! (`200ms`, `5s`), byte sizes, component and pipeline ids, signals.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de};

/// A telemetry signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric data points.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// All signals, in the order Tern lists them.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    /// The pipeline type name: `traces`, `metrics`, `logs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    /// The item noun used in self-telemetry names: `spans`, `metric_points`, `log_records`.
    pub fn item_noun(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "metric_points",
            Signal::Logs => "log_records",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "traces" => Ok(Signal::Traces),
            "metrics" => Ok(Signal::Metrics),
            "logs" => Ok(Signal::Logs),
            other => Err(format!(
                "unknown signal `{other}` (expected traces, metrics or logs)"
            )),
        }
    }
}

/// `type` or `type/name`, e.g. `otlp`, `batch/fast`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    /// The component type (`otlp`).
    pub kind: String,
    /// The optional name after the slash.
    pub name: Option<String>,
}

impl ComponentId {
    /// Builds an id from its type alone.
    pub fn new(kind: &str) -> Self {
        ComponentId {
            kind: kind.to_string(),
            name: None,
        }
    }
}

/// The Collector's type rule: `^[a-zA-Z][0-9a-zA-Z_]{0,62}$`.
fn valid_type(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The Collector's name rule: 1 to 1024 characters, none of them
/// whitespace, control characters or symbols (Unicode categories Z, C, S).
/// Tern checks every whitespace and control character and the ASCII symbols
/// (`$+<=>^`|~`); other non-ASCII symbols are let through.
fn name_problem(name: &str) -> Option<String> {
    let count = name.chars().count();
    if count > 1024 {
        return Some(format!(
            "name `{name}` is longer than 1024 characters ({count} characters)"
        ));
    }
    let bad = |c: char| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~')
    };
    name.chars().any(bad).then(|| {
        format!("invalid character(s) in name `{name}` (no spaces, control characters or symbols)")
    })
}

impl FromStr for ComponentId {
    type Err = String;
    /// Parses `type[/name]` as the Collector does: both parts trimmed, the
    /// name is everything after the first `/`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = match s.split_once('/') {
            Some((kind, name)) => (kind.trim(), Some(name.trim())),
            None => (s.trim(), None),
        };
        if kind.is_empty() {
            return Err(match name {
                Some(_) => format!("invalid id `{s}`: the part before / should not be empty"),
                None => "id must not be empty".into(),
            });
        }
        if let Some(name) = name {
            if name.is_empty() {
                return Err(format!(
                    "invalid id `{s}`: the part after / should not be empty"
                ));
            }
            if let Some(problem) = name_problem(name) {
                return Err(format!("invalid id `{s}`: {problem}"));
            }
        }
        if !valid_type(kind) {
            return Err(format!(
                "invalid id `{s}`: the type `{kind}` must start with a letter and have at most 63 letters, digits and `_`"
            ));
        }
        Ok(ComponentId {
            kind: kind.to_string(),
            name: name.map(str::to_string),
        })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{}", self.kind, name),
            None => f.write_str(&self.kind),
        }
    }
}

/// `traces`, `metrics/2`, ...
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipelineId {
    /// The pipeline's signal.
    pub signal: Signal,
    /// The optional name after the slash.
    pub name: Option<String>,
}

impl FromStr for PipelineId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id: ComponentId = s.parse()?;
        if id.kind == "profiles" {
            return Err(
                "pipelines of the `profiles` signal are not supported: Tern handles traces, metrics and logs"
                    .into(),
            );
        }
        Ok(PipelineId {
            signal: id.kind.parse()?,
            name: id.name,
        })
    }
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{}", self.signal, name),
            None => write!(f, "{}", self.signal),
        }
    }
}

/// A duration written the Go way: `200ms`, `5s`, `1m30s`, `1h`; a bare
/// integer is nanoseconds (as in the Collector).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

impl FromStr for GoDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(nanos) = s.parse::<u64>() {
            return Ok(GoDuration(Duration::from_nanos(nanos)));
        }
        let bad = || format!("invalid duration `{s}` (examples: 200ms, 5s, 1m30s)");
        let mut total = Duration::ZERO;
        let mut rest = s;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let (num, tail) = rest.split_at(num_end);
            let value: f64 = num.parse().map_err(|_| bad())?;
            let unit_end = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_end);
            let scale = match unit {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad()),
            };
            total += Duration::from_secs_f64(value * scale);
            rest = tail;
        }
        Ok(GoDuration(total))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A host:port listen address, checked when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host part (may be empty, `0.0.0.0`, `localhost`, `[::1]`).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Endpoint {
    /// Builds an endpoint.
    pub fn new(host: &str, port: u16) -> Self {
        Endpoint {
            host: host.to_string(),
            port,
        }
    }

    /// True when binding this address would also take `other`'s port.
    pub fn clashes_with(&self, other: &Endpoint) -> bool {
        fn norm(h: &str) -> &str {
            match h.trim_start_matches('[').trim_end_matches(']') {
                "" | "0.0.0.0" | "::" => "*",
                "localhost" | "127.0.0.1" | "::1" => "loopback",
                other => other,
            }
        }
        let (a, b) = (norm(&self.host), norm(&other.host));
        self.port != 0 && self.port == other.port && (a == b || a == "*" || b == "*")
    }
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = s
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| format!("invalid endpoint `{s}`: expected host:port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid endpoint `{s}`: port must be 0-65535"))?;
        Ok(Endpoint::new(host, port))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s: &str| s.parse::<GoDuration>().map(|d| d.0);
        assert_eq!(d("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(d("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(d("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(d("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(d("1000").unwrap(), Duration::from_micros(1));
        assert!(d("5 parsecs").is_err());
        assert!(d("").is_err());
        assert!(d("ms").is_err());
    }

    #[test]
    fn ids() {
        let id: ComponentId = "batch/fast".parse().unwrap();
        assert_eq!(
            (id.kind.as_str(), id.name.as_deref()),
            ("batch", Some("fast"))
        );
        assert_eq!(id.to_string(), "batch/fast");
        assert!("".parse::<ComponentId>().is_err());
        assert!("9x".parse::<ComponentId>().is_err());
        assert!("otlp/".parse::<ComponentId>().is_err());
        // The Collector's rules: types are letters, digits and `_`; names
        // have no spaces or symbols but may hold `/`, `-`, `.`; both trimmed.
        assert!("otlp-x".parse::<ComponentId>().is_err());
        assert!("my receiver".parse::<ComponentId>().is_err());
        assert!("otlp/my name".parse::<ComponentId>().is_err());
        assert!("otlp/a+b".parse::<ComponentId>().is_err());
        assert!("/x".parse::<ComponentId>().is_err());
        let id: ComponentId = " otlp / a/b-c.d ".parse().unwrap();
        assert_eq!(id.to_string(), "otlp/a/b-c.d");
        assert!("x".repeat(64).parse::<ComponentId>().is_err());
        let p: PipelineId = "metrics/2".parse().unwrap();
        assert_eq!(p.signal, Signal::Metrics);
        assert!(
            "profiles/x"
                .parse::<PipelineId>()
                .unwrap_err()
                .contains("`profiles` signal are not supported")
        );
    }

    #[test]
    fn endpoints() {
        let e = |s: &str| s.parse::<Endpoint>().unwrap();
        assert!(e("localhost:4317").clashes_with(&e("127.0.0.1:4317")));
        assert!(e("0.0.0.0:4317").clashes_with(&e("10.0.0.1:4317")));
        assert!(!e("10.0.0.2:4317").clashes_with(&e("10.0.0.1:4317")));
        assert!(!e("localhost:0").clashes_with(&e("localhost:0")));
        assert!("localhost".parse::<Endpoint>().is_err());
        assert!("localhost:99999".parse::<Endpoint>().is_err());
        assert_eq!(e("[::1]:80").host, "[::1]");
    }
}

/// Where a network exporter sends: scheme, host, port and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// TLS (`https`) or plain text.
    pub tls: bool,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path, starting with `/` (just `/` when none was given).
    pub path: String,
}

impl Target {
    /// `host:port` for connecting (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Parses an `http://` or `https://` URL; the port defaults to 80 / 443.
    pub fn parse_url(url: &str) -> Result<Target, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "invalid URL `{url}`: must start with http:// or https://"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = split_host_port(authority, Some(default_port))
            .map_err(|e| format!("invalid URL `{url}`: {e}"))?;
        Ok(Target {
            tls,
            host,
            port,
            path: path.to_string(),
        })
    }

    /// Parses a gRPC endpoint: `host:port` (TLS unless `insecure`) or a URL
    /// whose scheme decides.
    pub fn parse_grpc(endpoint: &str, insecure: bool) -> Result<Target, String> {
        if endpoint.contains("://") {
            return Target::parse_url(endpoint);
        }
        let (host, port) = split_host_port(endpoint, None)
            .map_err(|e| format!("invalid endpoint `{endpoint}`: {e}"))?;
        Ok(Target {
            tls: !insecure,
            host,
            port,
            path: "/".into(),
        })
    }
}

fn split_host_port(authority: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed `[`")?;
        let port = rest[end + 1..].strip_prefix(':');
        (rest[..end].to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    let port = match (port, default_port) {
        (Some(p), _) => p.parse().map_err(|_| format!("invalid port `{p}`"))?,
        (None, Some(d)) => d,
        (None, None) => return Err("expected host:port".into()),
    };
    Ok((host, port))
}

#[cfg(test)]
mod target_tests {
    use super::*;

    #[test]
    fn urls_and_grpc_endpoints() {
        let t = Target::parse_url("https://collector.example:4318/otlp").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (true, "collector.example", 4318, "/otlp")
        );
        let t = Target::parse_url("http://[::1]/").unwrap();
        assert_eq!(
            (t.tls, t.port, t.authority()),
            (false, 80, "[::1]:80".to_string())
        );
        assert!(Target::parse_url("collector:4318").is_err());
        assert!(Target::parse_url("http://:80").is_err());
        let g = Target::parse_grpc("gateway:4317", false).unwrap();
        assert!(g.tls);
        assert!(!Target::parse_grpc("gateway:4317", true).unwrap().tls);
        assert!(
            !Target::parse_grpc("http://gateway:4317", false)
                .unwrap()
                .tls
        );
        assert!(Target::parse_grpc("gateway", true).is_err());
    }
}

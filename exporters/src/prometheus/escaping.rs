//! Names on the scrape endpoint for Prometheus 3's UTF-8 names, as the
//! Prometheus client libraries (client_golang with prometheus/common's
//! `expfmt`) serve them: the scraper's `Accept` header picks the format
//! and, with its `escaping` parameter, how names outside the classic set
//! `[a-zA-Z_:][a-zA-Z0-9_:]*` are written. `allow-utf-8` keeps them, quoted
//! (`{"http.server.duration_seconds_bucket","http.route"="/",le="1"}`);
//! `underscores` (the default), `dots` and `values` escape them. The
//! chosen scheme is named in the answer's Content-Type.

use std::borrow::Cow;
use std::fmt::Write;

use super::text::Format;

/// How names that are not classic Prometheus names are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    /// Written as they are, quoted (`allow-utf-8`).
    AllowUtf8,
    /// Each character outside the classic set becomes `_` (`underscores`).
    Underscores,
    /// `_` -> `__`, `.` -> `_dot_`, any other character outside the set ->
    /// `__` (`dots`).
    Dots,
    /// `U__` then `_` -> `__` and any other character outside the set ->
    /// `_<hex code point>_` (`values`).
    Values,
}

impl Escaping {
    /// The scheme named by an `escaping` parameter.
    fn from_param(value: &str) -> Option<Escaping> {
        match value {
            "allow-utf-8" => Some(Escaping::AllowUtf8),
            "underscores" => Some(Escaping::Underscores),
            "dots" => Some(Escaping::Dots),
            "values" => Some(Escaping::Values),
            _ => None,
        }
    }
}

/// What a scrape is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Body format.
    pub format: Format,
    /// OpenMetrics asked for as version 0.0.1 (same body, that version in
    /// the Content-Type).
    pub open_metrics_0_0_1: bool,
    /// How names are written.
    pub escaping: Escaping,
}

impl Negotiated {
    /// The Content-Type, with the escaping scheme as a parameter.
    pub fn content_type(self) -> &'static str {
        use Escaping::*;
        match (self.format, self.open_metrics_0_0_1, self.escaping) {
            (Format::Text, _, AllowUtf8) => {
                "text/plain; version=0.0.4; charset=utf-8; escaping=allow-utf-8"
            }
            (Format::Text, _, Underscores) => {
                "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
            }
            (Format::Text, _, Dots) => "text/plain; version=0.0.4; charset=utf-8; escaping=dots",
            (Format::Text, _, Values) => {
                "text/plain; version=0.0.4; charset=utf-8; escaping=values"
            }
            (Format::OpenMetrics, false, AllowUtf8) => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
            }
            (Format::OpenMetrics, false, Underscores) => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
            }
            (Format::OpenMetrics, false, Dots) => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=dots"
            }
            (Format::OpenMetrics, false, Values) => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=values"
            }
            (Format::OpenMetrics, true, AllowUtf8) => {
                "application/openmetrics-text; version=0.0.1; charset=utf-8; escaping=allow-utf-8"
            }
            (Format::OpenMetrics, true, Underscores) => {
                "application/openmetrics-text; version=0.0.1; charset=utf-8; escaping=underscores"
            }
            (Format::OpenMetrics, true, Dots) => {
                "application/openmetrics-text; version=0.0.1; charset=utf-8; escaping=dots"
            }
            (Format::OpenMetrics, true, Values) => {
                "application/openmetrics-text; version=0.0.1; charset=utf-8; escaping=values"
            }
        }
    }
}

/// One clause of an `Accept` header.
struct Clause<'a> {
    kind: &'a str,
    subtype: &'a str,
    q: f64,
    version: Option<&'a str>,
    escaping: Option<&'a str>,
}

fn clauses(accept: &str) -> Vec<Clause<'_>> {
    let mut out: Vec<Clause<'_>> = accept
        .split(',')
        .filter_map(|part| {
            let mut params = part.trim().split(';');
            let range = params.next()?.trim();
            let (kind, subtype) = match range.split_once('/') {
                Some((k, s)) => (k.trim(), s.trim()),
                None if range == "*" => ("*", "*"),
                None => return None,
            };
            let mut clause = Clause {
                kind,
                subtype,
                q: 1.0,
                version: None,
                escaping: None,
            };
            for param in params {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                match key.trim() {
                    "q" => clause.q = value.trim().parse().unwrap_or(0.0),
                    "version" => clause.version = Some(value.trim()),
                    "escaping" => clause.escaping = Some(value.trim()),
                    _ => {}
                }
            }
            Some(clause)
        })
        .collect();
    // Highest q first; at equal q, concrete types before wildcards.
    out.sort_by(|a, b| {
        b.q.total_cmp(&a.q)
            .then((a.kind == "*").cmp(&(b.kind == "*")))
            .then((a.subtype == "*").cmp(&(b.subtype == "*")))
    });
    out
}

/// Picks the format and the escaping for a scrape with this `Accept`
/// header, as client_golang's `promhttp` handler does: clauses are tried
/// best first; the last valid `escaping` seen up to the matching clause
/// decides the escaping (`underscores` when none); OpenMetrics (1.0.0, or
/// 0.0.1 when asked without a version) only when `open_metrics`; anything
/// else gets the text format.
pub fn negotiate(accept: &str, open_metrics: bool) -> Negotiated {
    let mut escaping = Escaping::Underscores;
    let text = |escaping| Negotiated {
        format: Format::Text,
        open_metrics_0_0_1: false,
        escaping,
    };
    for clause in clauses(accept) {
        if let Some(scheme) = clause.escaping.and_then(Escaping::from_param) {
            escaping = scheme;
        }
        // `*/*` takes the first format offered; otherwise type and subtype
        // must be named, and the version (0.0.1 for OpenMetrics and 0.0.4
        // for text when left out) must be one served.
        let any = clause.kind == "*" && clause.subtype == "*";
        let named = |kind: &str, subtype: &str| clause.kind == kind && clause.subtype == subtype;
        if open_metrics {
            let version = match (any, clause.version) {
                (true, _) => Some(false),
                (false, None | Some("0.0.1")) => Some(true),
                (false, Some("1.0.0")) => Some(false),
                (false, Some(_)) => None,
            };
            if let Some(open_metrics_0_0_1) =
                version.filter(|_| any || named("application", "openmetrics-text"))
            {
                return Negotiated {
                    format: Format::OpenMetrics,
                    open_metrics_0_0_1,
                    escaping,
                };
            }
        }
        if any || (named("text", "plain") && matches!(clause.version, None | Some("0.0.4"))) {
            return text(escaping);
        }
    }
    text(escaping)
}

/// Whether `name` is a classic Prometheus metric name (also how label
/// names are judged when escaping, as prometheus/common does).
pub fn is_classic(name: &str) -> bool {
    !name.is_empty() && name.char_indices().all(|(i, c)| classic_char(c, i))
}

fn classic_char(c: char, at: usize) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (c.is_ascii_digit() && at > 0)
}

/// `name` as `scheme` writes it: classic names as they are, others escaped
/// (or kept, for `allow-utf-8`).
pub fn escape(name: &str, scheme: Escaping) -> Cow<'_, str> {
    if is_classic(name) || name.is_empty() || scheme == Escaping::AllowUtf8 {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    if scheme == Escaping::Values {
        out.push_str("U__");
    }
    for (i, c) in name.char_indices() {
        match scheme {
            Escaping::Underscores if classic_char(c, i) => out.push(c),
            Escaping::Underscores => out.push('_'),
            Escaping::Dots | Escaping::Values if c == '_' => out.push_str("__"),
            Escaping::Dots if c == '.' => out.push_str("_dot_"),
            Escaping::Dots | Escaping::Values if classic_char(c, i) => out.push(c),
            Escaping::Dots => out.push_str("__"),
            Escaping::Values => {
                let _ = write!(out, "_{:x}_", u32::from(c));
            }
            Escaping::AllowUtf8 => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Appends `name`: as it is when classic, else quoted with `\`, `"` and
/// newlines escaped (only UTF-8 names under `allow-utf-8` get here).
pub fn write_name(out: &mut String, name: &str) {
    if is_classic(name) {
        out.push_str(name);
        return;
    }
    out.push('"');
    write_escaped(out, name);
    out.push('"');
}

/// Appends `text` with `\`, `"` and newlines escaped (label values, quoted
/// names).
pub fn write_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Prometheus 3 sends by default (its scrape_protocols), and
    /// Prometheus 2.
    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn the_accept_header_picks_format_and_escaping_as_client_golang_does() {
        let n = negotiate(PROMETHEUS_3, true);
        assert_eq!(
            (n.format, n.escaping),
            (Format::OpenMetrics, Escaping::AllowUtf8)
        );
        assert_eq!(
            n.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"
        );
        // Without OpenMetrics the text format is chosen, and the escaping
        // seen on the way there still holds.
        let n = negotiate(PROMETHEUS_3, false);
        assert_eq!((n.format, n.escaping), (Format::Text, Escaping::AllowUtf8));
        let n = negotiate(PROMETHEUS_2, true);
        assert_eq!(
            (n.format, n.escaping),
            (Format::OpenMetrics, Escaping::Underscores)
        );
        assert_eq!(negotiate("", true).escaping, Escaping::Underscores);
        assert_eq!(negotiate("", true).format, Format::Text);
        let n = negotiate("application/openmetrics-text", true);
        assert!(n.open_metrics_0_0_1);
        assert_eq!(
            n.content_type(),
            "application/openmetrics-text; version=0.0.1; charset=utf-8; escaping=underscores"
        );
        assert_eq!(
            negotiate("text/plain;version=0.0.4;escaping=values", true).escaping,
            Escaping::Values
        );
        assert_eq!(
            negotiate("text/plain;escaping=bogus", true).escaping,
            Escaping::Underscores
        );
        assert_eq!(
            negotiate("*/*;escaping=dots", true).format,
            Format::OpenMetrics
        );
        assert_eq!(negotiate("application/*", true).format, Format::Text);
        assert_eq!(
            negotiate("text/plain;version=1.0.0", false).format,
            Format::Text
        );
    }

    #[test]
    fn names_are_escaped_as_prometheus_common_does() {
        let name = "http.server.request_duration";
        assert_eq!(escape(name, Escaping::AllowUtf8), name);
        assert_eq!(
            escape(name, Escaping::Underscores),
            "http_server_request_duration"
        );
        assert_eq!(
            escape(name, Escaping::Dots),
            "http_dot_server_dot_request__duration"
        );
        assert_eq!(
            escape(name, Escaping::Values),
            "U__http_2e_server_2e_request__duration"
        );
        assert_eq!(escape("1up", Escaping::Underscores), "_up");
        assert_eq!(escape("größe", Escaping::Underscores), "gr__e");
        assert_eq!(escape("größe", Escaping::Values), "U__gr_f6__df_e");
        // Classic names are never touched, whatever the scheme.
        assert_eq!(escape("a_b", Escaping::Dots), "a_b");
        let mut out = String::new();
        write_name(&mut out, "a.\"b\"");
        write_name(&mut out, "ok_name");
        assert_eq!(out, r#""a.\"b\""ok_name"#);
    }
}

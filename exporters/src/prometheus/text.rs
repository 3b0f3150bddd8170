//! Rendering the store in the Prometheus text format (0.0.4) or, when the
//! scraper asks for it, OpenMetrics 1.0 with exemplars, names written as
//! the negotiated [`Escaping`] says. Exponential histograms are rendered as
//! classic histograms whose `le` bounds are the exponential bucket
//! boundaries (lossless for the counts; the text formats cannot carry
//! native histograms).

use std::fmt::Write;

use super::escaping::{Escaping, escape, is_classic, write_escaped, write_name};
use super::store::{Family, Series, Store};
use super::translate::{Exemplar, ExpBuckets, Kind, Value, go_float};

/// Which exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

/// Cumulative (upper bound, count) pairs, ending with +Inf, of a histogram value.
pub fn cumulative_buckets(value: &Value) -> Vec<(f64, u64)> {
    match value {
        Value::Histogram {
            bounds,
            counts,
            count,
            ..
        } => {
            let mut out = Vec::with_capacity(bounds.len() + 1);
            let mut acc = 0;
            for (b, c) in bounds.iter().zip(counts) {
                acc += c;
                out.push((*b, acc));
            }
            out.push((f64::INFINITY, *count));
            out
        }
        Value::Exponential {
            scale,
            zero_count,
            zero_threshold,
            positive,
            negative,
            count,
            ..
        } => {
            let base = 2f64.powf(2f64.powi(-scale));
            let mut out = Vec::new();
            let mut acc = 0;
            let ExpBuckets { offset, counts } = negative;
            for (i, c) in counts.iter().enumerate().rev() {
                acc += c;
                out.push((-base.powi(offset + i as i32), acc));
            }
            acc += zero_count;
            out.push((*zero_threshold, acc));
            let ExpBuckets { offset, counts } = positive;
            for (i, c) in counts.iter().enumerate() {
                acc += c;
                out.push((base.powi(offset + i as i32 + 1), acc));
            }
            out.push((f64::INFINITY, *count));
            out
        }
        _ => Vec::new(),
    }
}

fn with_label(labels: &str, name: &str, value: &str) -> String {
    if labels.is_empty() {
        format!("{name}=\"{value}\"")
    } else {
        format!("{labels},{name}=\"{value}\"")
    }
}

/// `name="value",...`, names escaped by `escaping` (quoted where they stay
/// UTF-8), values escaped.
fn label_text(labels: &[(String, String)], escaping: Escaping) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        write_name(&mut s, &escape(k, escaping));
        s.push_str("=\"");
        write_escaped(&mut s, v);
        s.push('"');
    }
    s
}

struct Line<'a> {
    out: &'a mut String,
    /// Timestamp to write (milliseconds), when timestamps are on.
    ts_ms: Option<i64>,
    open_metrics: bool,
}

fn sample(line: &mut Line<'_>, name: &str, labels: &str, value: f64, exemplar: Option<&Exemplar>) {
    let out = &mut *line.out;
    // A name that is not classic (only under `allow-utf-8`) goes quoted
    // inside the braces.
    match (is_classic(name), labels.is_empty()) {
        (true, true) => out.push_str(name),
        (true, false) => {
            let _ = write!(out, "{name}{{{labels}}}");
        }
        (false, no_labels) => {
            out.push('{');
            write_name(out, name);
            if !no_labels {
                out.push(',');
                out.push_str(labels);
            }
            out.push('}');
        }
    }
    let _ = write!(out, " {}", go_float(value));
    if let Some(ts) = line.ts_ms {
        if line.open_metrics {
            let _ = write!(out, " {}", ts as f64 / 1000.0);
        } else {
            let _ = write!(out, " {ts}");
        }
    }
    if let Some(e) = exemplar {
        let _ = write!(
            out,
            " # {{trace_id=\"{}\",span_id=\"{}\"}} {} {}",
            e.trace_id,
            e.span_id,
            go_float(e.value),
            e.timestamp_ms as f64 / 1000.0
        );
    }
    out.push('\n');
}

/// How one scrape is written.
#[derive(Debug, Clone, Copy)]
struct Style {
    format: Format,
    escaping: Escaping,
    timestamps: bool,
}

fn series(out: &mut String, name: &str, kind: Kind, s: &Series, style: Style) {
    let Style {
        format,
        escaping,
        timestamps,
    } = style;
    let labels = label_text(&s.labels, escaping);
    let om = format == Format::OpenMetrics;
    let out = &mut Line {
        out,
        ts_ms: timestamps.then_some(s.timestamp_ms),
        open_metrics: om,
    };
    match (&s.value, kind) {
        (Value::Number(v), Kind::Counter) => {
            sample(out, name, &labels, *v, s.exemplar.as_ref().filter(|_| om));
        }
        (Value::Number(v), _) => sample(out, name, &labels, *v, None),
        (Value::Histogram { count, sum, .. } | Value::Exponential { count, sum, .. }, _) => {
            let mut previous = f64::NEG_INFINITY;
            for (le, cum) in cumulative_buckets(&s.value) {
                let ex = s
                    .exemplar
                    .as_ref()
                    .filter(|e| om && e.value > previous && e.value <= le);
                sample(
                    out,
                    &format!("{name}_bucket"),
                    &with_label(&labels, "le", &go_float(le)),
                    cum as f64,
                    ex,
                );
                previous = le;
            }
            sample(out, &format!("{name}_sum"), &labels, *sum, None);
            sample(out, &format!("{name}_count"), &labels, *count as f64, None);
        }
        (
            Value::Summary {
                count,
                sum,
                quantiles,
            },
            _,
        ) => {
            for (q, v) in quantiles {
                sample(
                    out,
                    name,
                    &with_label(&labels, "quantile", &go_float(*q)),
                    *v,
                    None,
                );
            }
            sample(out, &format!("{name}_sum"), &labels, *sum, None);
            sample(out, &format!("{name}_count"), &labels, *count as f64, None);
        }
    }
}

fn family(out: &mut String, name: &str, f: &Family, style: Style) {
    let format = style.format;
    let name = &*escape(name, style.escaping);
    // OpenMetrics names a counter's family without `_total`; a counter
    // whose name lacks it (no suffixes) is typed `unknown` there, as the
    // Prometheus client libraries write it.
    let (family_name, kind) = match (f.kind, format) {
        (Kind::Counter, Format::OpenMetrics) => match name.strip_suffix("_total") {
            Some(family) => (family, "counter"),
            None => (name, "unknown"),
        },
        (Kind::Counter, Format::Text) => (name, "counter"),
        (Kind::Gauge, _) => (name, "gauge"),
        (Kind::Histogram, _) => (name, "histogram"),
        (Kind::Summary, _) => (name, "summary"),
    };
    if !f.help.is_empty() {
        let help = f.help.replace('\\', "\\\\").replace('\n', "\\n");
        out.push_str("# HELP ");
        write_name(out, family_name);
        let _ = writeln!(out, " {help}");
    }
    out.push_str("# TYPE ");
    write_name(out, family_name);
    let _ = writeln!(out, " {kind}");
    let mut keys: Vec<&String> = f.series.keys().collect();
    keys.sort();
    for k in keys {
        series(out, name, f.kind, &f.series[k], style);
    }
}

/// Renders every series in `store`, names written as `escaping` says (with
/// each sample's timestamp when `timestamps`).
pub fn render(store: &Store, format: Format, escaping: Escaping, timestamps: bool) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let style = Style {
        format,
        escaping,
        timestamps,
    };
    store.for_each_family(|name, f| family(&mut out, name, f, style));
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::translate::Observation;
    use std::time::Duration;

    fn store_with(obs: Vec<Observation>) -> Store {
        let s = Store::new(100, Duration::from_secs(60));
        for o in obs {
            s.apply(&o).unwrap();
        }
        s
    }

    fn o(name: &str, kind: Kind, value: Value, exemplar: Option<Exemplar>) -> Observation {
        Observation {
            name: name.into(),
            help: "Some help".into(),
            kind,
            labels: vec![("job".into(), "svc".into())],
            timestamp_ms: 1000,
            value,
            delta: false,
            exemplars: exemplar.into_iter().collect(),
            target_info: false,
            truncated_labels: 0,
        }
    }

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count() {
        let h = Value::Histogram {
            count: 6,
            sum: 12.5,
            bounds: vec![1.0, 5.0],
            counts: vec![1, 2, 3],
        };
        let text = render(
            &store_with(vec![o("lat_seconds", Kind::Histogram, h, None)]),
            Format::Text,
            Escaping::Underscores,
            false,
        );
        assert_eq!(
            text,
            "# HELP lat_seconds Some help\n# TYPE lat_seconds histogram\n\
             lat_seconds_bucket{job=\"svc\",le=\"1\"} 1\n\
             lat_seconds_bucket{job=\"svc\",le=\"5\"} 3\n\
             lat_seconds_bucket{job=\"svc\",le=\"+Inf\"} 6\n\
             lat_seconds_sum{job=\"svc\"} 12.5\n\
             lat_seconds_count{job=\"svc\"} 6\n"
        );
    }

    #[test]
    fn openmetrics_names_counters_by_family_and_carries_exemplars() {
        let ex = Exemplar {
            trace_id: "ab".into(),
            span_id: "cd".into(),
            value: 1.0,
            timestamp_ms: 1500,
        };
        let s = store_with(vec![o(
            "req_total",
            Kind::Counter,
            Value::Number(3.0),
            Some(ex),
        )]);
        let om = render(&s, Format::OpenMetrics, Escaping::Underscores, false);
        assert!(om.contains("# TYPE req counter\n"), "{om}");
        assert!(
            om.contains("req_total{job=\"svc\"} 3 # {trace_id=\"ab\",span_id=\"cd\"} 1 1.5\n"),
            "{om}"
        );
        assert!(om.ends_with("# EOF\n"));
        let text = render(&s, Format::Text, Escaping::Underscores, false);
        assert!(
            text.contains("# TYPE req_total counter\nreq_total{job=\"svc\"} 3\n"),
            "{text}"
        );
    }

    #[test]
    fn exponential_histograms_become_classic_buckets() {
        // scale 0: base 2; positive buckets (1,2], (2,4] with offset 0.
        let v = Value::Exponential {
            count: 6,
            sum: 9.0,
            scale: 0,
            zero_count: 1,
            zero_threshold: 0.0,
            positive: ExpBuckets {
                offset: 0,
                counts: vec![2, 2],
            },
            negative: ExpBuckets {
                offset: 0,
                counts: vec![1],
            },
        };
        assert_eq!(
            cumulative_buckets(&v),
            vec![(-1.0, 1), (0.0, 2), (2.0, 4), (4.0, 6), (f64::INFINITY, 6)]
        );
    }

    #[test]
    fn summaries_render_quantiles() {
        let v = Value::Summary {
            count: 4,
            sum: 10.0,
            quantiles: vec![(0.5, 2.0), (0.99, 4.0)],
        };
        let text = render(
            &store_with(vec![o("rpc", Kind::Summary, v, None)]),
            Format::Text,
            Escaping::Underscores,
            false,
        );
        assert!(
            text.contains("rpc{job=\"svc\",quantile=\"0.5\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("rpc{job=\"svc\",quantile=\"0.99\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("rpc_count{job=\"svc\"} 4\n"), "{text}");
    }

    #[test]
    fn utf8_names_are_quoted_under_allow_utf8_and_escaped_otherwise() {
        let mut obs = o(
            "http.duration_seconds",
            Kind::Histogram,
            Value::Histogram {
                count: 1,
                sum: 0.5,
                bounds: vec![1.0],
                counts: vec![1, 0],
            },
            None,
        );
        obs.labels = vec![
            ("http.route".into(), "/a\"b".into()),
            ("job".into(), "svc".into()),
        ];
        let s = store_with(vec![obs]);
        let text = render(&s, Format::Text, Escaping::AllowUtf8, false);
        assert_eq!(
            text,
            "# HELP \"http.duration_seconds\" Some help\n\
             # TYPE \"http.duration_seconds\" histogram\n\
             {\"http.duration_seconds_bucket\",\"http.route\"=\"/a\\\"b\",job=\"svc\",le=\"1\"} 1\n\
             {\"http.duration_seconds_bucket\",\"http.route\"=\"/a\\\"b\",job=\"svc\",le=\"+Inf\"} 1\n\
             {\"http.duration_seconds_sum\",\"http.route\"=\"/a\\\"b\",job=\"svc\"} 0.5\n\
             {\"http.duration_seconds_count\",\"http.route\"=\"/a\\\"b\",job=\"svc\"} 1\n"
        );
        let text = render(&s, Format::Text, Escaping::Underscores, false);
        assert!(
            text.contains("# TYPE http_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "http_duration_seconds_bucket{http_route=\"/a\\\"b\",job=\"svc\",le=\"1\"} 1\n"
            ),
            "{text}"
        );
        let counter = store_with(vec![o(
            "a.b_total",
            Kind::Counter,
            Value::Number(2.0),
            None,
        )]);
        let om = render(&counter, Format::OpenMetrics, Escaping::AllowUtf8, false);
        assert!(
            om.contains("# TYPE \"a.b\" counter\n{\"a.b_total\",job=\"svc\"} 2\n"),
            "{om}"
        );
        let om = render(&counter, Format::OpenMetrics, Escaping::Values, false);
        // As client_golang: the family name is escaped, then `_total` cut.
        assert!(
            om.contains("# TYPE U__a_2e_b_ counter\nU__a_2e_b__total{job=\"svc\"} 2\n"),
            "{om}"
        );
    }

    #[test]
    fn openmetrics_types_a_counter_without_total_unknown() {
        let s = store_with(vec![o("requests", Kind::Counter, Value::Number(3.0), None)]);
        let om = render(&s, Format::OpenMetrics, Escaping::Underscores, false);
        assert!(
            om.contains("# TYPE requests unknown\nrequests{job=\"svc\"} 3\n"),
            "{om}"
        );
        let text = render(&s, Format::Text, Escaping::Underscores, false);
        assert!(text.contains("# TYPE requests counter\n"), "{text}");
    }
}

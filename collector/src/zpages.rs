//! The `zpages` extension: plain HTML pages describing the running
//! collector, at the Collector's paths. `/debug/servicez` shows build and
//! runtime information, Tern's own resource and a summary of the
//! configuration; `/debug/pipelinez` lists each pipeline with its
//! receivers, processors and exporters; `/debug/extensionz` lists the
//! running extensions. Any other path is a 404.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use tern_config::{ComponentId, Config, Ref};

use crate::admin;
use crate::serve::{Shutdown, response};
use tern_config::{Component, ZPagesConfig};
use tern_core::build::{BuildError, Built, Context, Serve, Server};

/// The pages, built from the configuration at start.
pub struct Pages {
    /// Service page sections that never change (build, resource, config).
    service: String,
    pipelines: String,
    extensions: String,
    started_unix: u64,
    started: Instant,
}

/// `&`, `<`, `>`, `"` and `'` as HTML entities.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A table with `headers` and one row per entry of `rows` (cells escaped).
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table border=\"1\">\n<tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn ids<'a>(ids: impl IntoIterator<Item = &'a ComponentId>) -> String {
    ids.into_iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn refs(refs: &[Ref]) -> String {
    ids(refs.iter().map(|r| &r.id))
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<p><a href=\"/debug/servicez\">service</a> | <a href=\"/debug/pipelinez\">pipelines</a> | <a href=\"/debug/extensionz\">extensions</a></p>\n{body}</body>\n</html>\n"
    )
}

impl Pages {
    /// Pages for `config`, Tern describing itself with `resource`.
    pub fn new(config: &Config, resource: &BTreeMap<String, String>) -> Pages {
        let mut service = String::from("<h2>Build</h2>\n");
        service.push_str(&table(
            &["", ""],
            &[
                vec!["Command".into(), "tern".into()],
                vec!["Description".into(), env!("CARGO_PKG_DESCRIPTION").into()],
                vec!["Version".into(), env!("CARGO_PKG_VERSION").into()],
            ],
        ));
        service.push_str("<h2>Resource</h2>\n");
        let rows: Vec<Vec<String>> = resource
            .iter()
            .map(|(k, v)| vec![k.clone(), v.clone()])
            .collect();
        service.push_str(&table(&["attribute", "value"], &rows));
        service.push_str("<h2>Configuration</h2>\n");
        service.push_str(&table(
            &["section", "components"],
            &[
                vec!["receivers".into(), ids(config.receivers.keys())],
                vec!["processors".into(), ids(config.processors.keys())],
                vec!["exporters".into(), ids(config.exporters.keys())],
                vec!["connectors".into(), ids(config.connectors.keys())],
                vec!["extensions".into(), ids(config.extensions.keys())],
                vec![
                    "service.pipelines".into(),
                    config
                        .service
                        .pipelines
                        .keys()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                ],
                vec![
                    "service.extensions".into(),
                    refs(&config.service.extensions),
                ],
            ],
        ));

        let rows: Vec<Vec<String>> = config
            .service
            .pipelines
            .values()
            .map(|p| {
                vec![
                    p.id.to_string(),
                    p.id.signal.to_string(),
                    refs(&p.receivers),
                    refs(&p.processors),
                    refs(&p.exporters),
                ]
            })
            .collect();
        let pipelines = table(
            &["pipeline", "signal", "receivers", "processors", "exporters"],
            &rows,
        );

        let rows: Vec<Vec<String>> = config
            .service
            .extensions
            .iter()
            .filter_map(|r| config.extensions.get(&r.id))
            .map(|c| {
                let endpoints: Vec<String> = c
                    .config
                    .listens()
                    .iter()
                    .map(|(_, e)| e.to_string())
                    .collect();
                vec![c.id.to_string(), endpoints.join(", ")]
            })
            .collect();
        let extensions = table(&["extension", "endpoint"], &rows);

        Pages {
            service,
            pipelines,
            extensions,
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            started: Instant::now(),
        }
    }

    /// The page at `path`, if there is one.
    fn get(&self, path: &str) -> Option<String> {
        match path {
            "/debug/servicez" => {
                let runtime = table(
                    &["", ""],
                    &[
                        vec![
                            "Start time".into(),
                            format!("{} (seconds since the Unix epoch)", self.started_unix),
                        ],
                        vec![
                            "Uptime".into(),
                            format!("{} s", self.started.elapsed().as_secs()),
                        ],
                    ],
                );
                Some(page(
                    "Service",
                    &format!("<h2>Runtime</h2>\n{runtime}{}", self.service),
                ))
            }
            "/debug/pipelinez" => Some(page("Pipelines", &self.pipelines)),
            "/debug/extensionz" => Some(page("Extensions", &self.extensions)),
            _ => None,
        }
    }
}

/// Serves `pages` until `shutdown`.
pub async fn run(listener: tokio::net::TcpListener, pages: Arc<Pages>, shutdown: Shutdown) {
    admin::serve_routes(listener, shutdown, move |req| {
        pages
            .get(req.uri().path())
            .map(|html| response(StatusCode::OK, "text/html; charset=utf-8", html))
    })
    .await;
}

/// Builds the `zpages` extension: pages describing this config.
pub fn build(ctx: &Context<'_>, c: &Component) -> Result<Built, BuildError> {
    let config = ctx.settings::<ZPagesConfig>(c)?;
    let pages = Arc::new(Pages::new(ctx.config, ctx.resource));
    Ok(Built {
        servers: vec![Server {
            what: format!("extension {}", ctx.id),
            key: format!("extensions.{}.endpoint", ctx.id),
            endpoint: config.endpoint.clone(),
            serve: Serve::Task(Box::new(move |l, stop| Box::pin(run(l, pages, stop)))),
        }],
        ..Built::default()
    })
}

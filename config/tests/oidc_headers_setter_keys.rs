//! The `oidc` and `headers_setter` extensions' keys, defaults and the
//! Collector's validation messages, each at its key's line; `oidc` serves
//! receivers only, `headers_setter` exporters only (and not
//! `prometheus_remote_write`, whose requests merge many senders).

#![allow(clippy::unwrap_used)]

#[path = "common/one_file.rs"]
mod one_file;
use one_file::{errors, load};

use tern_config::components::{HeaderAction, HeadersSetterConfig, OidcConfig};

/// `extensions` (indented 2), all enabled, an otlp receiver and an
/// otlp_http exporter with the given `auth` ids (empty: none).
fn config(extensions: &str, enabled: &str, receiver_auth: &str, exporter_auth: &str) -> String {
    let auth = |id: &str, indent: &str| {
        if id.is_empty() {
            String::new()
        } else {
            format!("{indent}auth: {{authenticator: {id}}}\n")
        }
    };
    format!(
        "extensions:\n{extensions}\n\
         receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\n{}\
         exporters:\n  otlp_http:\n    endpoint: http://127.0.0.1:1\n{}\
         service:\n  extensions: [{enabled}]\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp_http]\n",
        auth(receiver_auth, "        "),
        auth(exporter_auth, "    "),
    )
}

#[test]
fn oidc_and_headers_setter_load_with_the_collectors_defaults() {
    let c = load(&config(
        "  oidc:\n    issuer_url: https://idp.example\n    audience: tern\n    providers:\n      - {issuer_url: https://other.example, ignore_audience: true, public_keys_file: /keys.json}\n  headers_setter:\n    headers:\n      - {key: X-Tenant, from_context: tenant}\n      - {key: X-Sub, from_attribute: subject, action: insert, default_value: anon}\n      - {key: X-Drop, action: delete}\n",
        "oidc, headers_setter",
        "oidc",
        "headers_setter",
    ))
    .unwrap();
    let o: &OidcConfig = c.extensions[&"oidc".parse().unwrap()].settings().unwrap();
    assert_eq!(o.attribute, "authorization");
    let all = o.all_providers();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].audience, "tern");
    assert_eq!(all[1].public_keys_file, "/keys.json");
    let h: &HeadersSetterConfig = c.extensions[&"headers_setter".parse().unwrap()]
        .settings()
        .unwrap();
    let actions: Vec<HeaderAction> = h.headers.iter().map(|h| h.action).collect();
    assert_eq!(
        actions,
        [
            HeaderAction::Upsert,
            HeaderAction::Insert,
            HeaderAction::Delete
        ]
    );
    assert_eq!(h.headers[1].default_value.as_deref(), Some("anon"));
}

#[test]
fn oidc_settings_errors_name_their_keys() {
    let e = errors(&config(
        "  oidc:\n    attribute: 'bad header'\n    providers:\n      - {issuer_url: https://a}\n      - {issuer_url: https://a/, audience: x, ignore_issuer: true}\n      - {issuer_url: 'ftp://b', audience: y}\n",
        "oidc",
        "oidc",
        "",
    ));
    let joined = e.join("\n");
    for expected in [
        "extensions.oidc.attribute: `bad header` is not an HTTP header name",
        "extensions.oidc.providers.0.audience: no Audience provided",
        "extensions.oidc.providers.1.issuer_url: duplicate issuer URL found: https://a/",
        "extensions.oidc.providers.1.ignore_issuer: ignore_issuer cannot be true when multiple providers are configured",
        "extensions.oidc.providers.2.issuer_url: must be an http:// or https:// URL",
    ] {
        assert!(joined.contains(expected), "{expected}\n{joined}");
    }
    let e = errors(&config("  oidc: {}\n", "oidc", "oidc", "")).join("\n");
    assert!(
        e.contains("extensions.oidc.issuer_url: no IssuerURL provided"),
        "{e}"
    );
    assert!(
        e.contains("extensions.oidc.audience: no Audience provided"),
        "{e}"
    );
}

#[test]
fn headers_setter_errors_name_their_keys() {
    let e = errors(&config(
        "  headers_setter:\n    headers:\n      - {from_context: a}\n      - {key: x-a}\n      - {key: x-b, value: v, from_context: c}\n    additional_auth: nothing\n",
        "headers_setter",
        "",
        "headers_setter",
    ))
    .join("\n");
    for expected in [
        "tern.yaml:4:9: extensions.headers_setter.headers.0.key: missing header name",
        "extensions.headers_setter.headers.1: missing header source",
        "extensions.headers_setter.headers.2: invalid header source, must be only one of",
        "extensions.headers_setter.additional_auth: failed to resolve authenticator \"nothing\"",
    ] {
        assert!(e.contains(expected), "{expected}\n{e}");
    }
    let e = errors(&config(
        "  headers_setter: {}\n",
        "headers_setter",
        "",
        "headers_setter",
    ));
    assert!(
        e.join("\n").contains("missing headers configuration"),
        "{e:?}"
    );
}

#[test]
fn each_serves_only_its_side() {
    let both = "  oidc: {issuer_url: 'https://idp', audience: t}\n  headers_setter:\n    headers: [{key: a, value: b}]\n";
    let e = errors(&config(
        both,
        "oidc, headers_setter",
        "headers_setter",
        "oidc",
    ))
    .join("\n");
    assert!(e.contains("receivers.otlp.protocols.grpc.auth.authenticator: failed to resolve authenticator \"headers_setter\": requested authenticator is not a server authenticator"), "{e}");
    assert!(e.contains("exporters.otlp_http.auth.authenticator: failed to resolve authenticator \"oidc\": requested authenticator is not a client authenticator"), "{e}");
    let prw = format!(
        "extensions:\n{both}\nreceivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\n\
         exporters:\n  prometheus_remote_write:\n    endpoint: http://127.0.0.1:1/api/v1/write\n    auth: {{authenticator: headers_setter}}\n\
         service:\n  extensions: [oidc, headers_setter]\n  pipelines:\n    metrics:\n      receivers: [otlp]\n      exporters: [prometheus_remote_write]\n"
    );
    let e = errors(&prw).join("\n");
    assert!(e.contains("headers_setter is not supported here"), "{e}");
}

//! The `bearertokenauth` and `basicauth` extensions' keys and defaults,
//! and `auth: {authenticator: <id>}` on the otlp receiver's protocols and
//! the OTLP exporters: an id that names no enabled authenticator of the
//! right side is an error at its line.

#![allow(clippy::unwrap_used)]

#[path = "common/one_file.rs"]
mod one_file;
use one_file::{errors, load};

use tern_config::OtlpHttpExporterConfig;
use tern_config::components::{BasicAuthConfig, BearerTokenAuthConfig};

/// A config with `extensions` (indented 2 spaces), `service.extensions`
/// `enabled`, and an otlp receiver whose http protocol has `auth`
/// (`{authenticator: ...}` or empty for none).
fn config(extensions: &str, enabled: &str, receiver_auth: &str, exporter_auth: &str) -> String {
    format!(
        "extensions:\n{extensions}\n\
         receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\n{receiver_auth}\n\
         exporters:\n  otlp_http:\n    endpoint: http://127.0.0.1:1\n{exporter_auth}\n\
         service:\n  extensions: [{enabled}]\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp_http]\n"
    )
}

fn ext<'a, T: tern_config::ComponentConfig>(c: &'a tern_config::Config, id: &str) -> &'a T {
    c.extensions[&id.parse().unwrap()].settings().unwrap()
}

#[test]
fn bearertokenauth_defaults_and_basicauth_sides_load() {
    let c = load(&config(
        "  bearertokenauth:\n    token: abc\n  basicauth/server:\n    htpasswd:\n      inline: |\n        a:b\n  basicauth/client:\n    client_auth:\n      username: u\n      password: p\n",
        "bearertokenauth, basicauth/server, basicauth/client",
        "        auth:\n          authenticator: basicauth/server",
        "    auth:\n      authenticator: basicauth/client",
    ))
    .unwrap();
    let b: &BearerTokenAuthConfig = ext(&c, "bearertokenauth");
    assert_eq!(
        (b.header.as_str(), b.scheme.as_str()),
        ("Authorization", "Bearer")
    );
    assert_eq!(b.inline_tokens(), ["abc"]);
    let s: &BasicAuthConfig = ext(&c, "basicauth/server");
    assert_eq!(s.htpasswd.as_ref().unwrap().inline, "a:b\n");
    let e: &OtlpHttpExporterConfig = c.exporters.values().next().unwrap().settings().unwrap();
    assert_eq!(e.auth.as_ref().unwrap().authenticator, "basicauth/client");
}

#[test]
fn an_unknown_or_disabled_authenticator_is_an_error_at_its_line() {
    let errs = errors(&config(
        "  bearertokenauth:\n    token: abc\n",
        "",
        "        auth:\n          authenticator: bearertokenauth",
        "    auth:\n      authenticator: nope",
    ));
    assert!(
        errs.iter().any(|e| e.contains("tern.yaml:11:")
            && e.contains("receivers.otlp.protocols.http.auth.authenticator")
            && e.contains(
                "failed to resolve authenticator \"bearertokenauth\": authenticator not found"
            )),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("tern.yaml:16:")
            && e.contains("exporters.otlp_http.auth.authenticator")
            && e.contains("\"nope\": authenticator not found")),
        "{errs:?}"
    );
}

#[test]
fn an_authenticator_of_the_wrong_side_is_an_error() {
    let errs = errors(&config(
        "  basicauth/server:\n    htpasswd:\n      inline: a:b\n  basicauth/client:\n    client_auth:\n      username: u\n",
        "basicauth/server, basicauth/client",
        "        auth:\n          authenticator: basicauth/client",
        "    auth:\n      authenticator: basicauth/server",
    ));
    assert!(
        errs.iter().any(
            |e| e.contains("receivers.otlp.protocols.http.auth.authenticator")
                && e.contains("requested authenticator is not a server authenticator")
        ),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("exporters.otlp_http.auth.authenticator")
                && e.contains("requested authenticator is not a client authenticator")),
        "{errs:?}"
    );
}

#[test]
fn extension_settings_follow_the_collectors_rules() {
    let errs = errors(&config(
        "  bearertokenauth/none:\n  bearertokenauth/both:\n    token: a\n    tokens: [b]\n\
         \x20 basicauth/none:\n  basicauth/both:\n    htpasswd: {inline: 'a:b'}\n    client_auth: {username: u}\n\
         \x20 basicauth/colon:\n    client_auth: {username: 'a:b'}\n\
         \x20 bearertokenauth/extra:\n    token: a\n    wait_for_token_file: true\n",
        "",
        "",
        "",
    ));
    for expected in [
        "extensions.bearertokenauth/none.token: no bearer token provided",
        "extensions.bearertokenauth/both.tokens: either tokens or token should be provided, not both",
        "extensions.basicauth/none.htpasswd: no credential source provided",
        "extensions.basicauth/both.client_auth: only one of `htpasswd` or `client_auth` can be specified",
        "extensions.basicauth/colon.client_auth.username: invalid authorization format",
        "wait_for_token_file",
    ] {
        assert!(
            errs.iter().any(|e| e.contains(expected)),
            "{expected}: {errs:?}"
        );
    }
}

//! The `bearertokenauth` extension's settings: a static token (or list),
//! or a file of tokens read again when it changes, checked in the
//! `header` as `<scheme> <token>`.

use serde::Deserialize;

use super::client::{is_header_name, is_header_value};
use super::{Check, ComponentConfig};
use crate::ConfigError;

/// `extensions.bearertokenauth`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BearerTokenAuthConfig {
    /// The header carrying the credential (default `Authorization`).
    pub header: String,
    /// The word before the token (default `Bearer`; empty: the token alone).
    pub scheme: String,
    /// The token.
    pub token: String,
    /// Several accepted tokens (a client sends the first); not with `token`.
    pub tokens: Vec<String>,
    /// A file of tokens, the first word of each line (the rest is a
    /// comment), read again when it changes; wins over `token` / `tokens`.
    pub filename: String,
}

impl Default for BearerTokenAuthConfig {
    fn default() -> Self {
        BearerTokenAuthConfig {
            header: "Authorization".into(),
            scheme: "Bearer".into(),
            token: String::new(),
            tokens: Vec::new(),
            filename: String::new(),
        }
    }
}

impl BearerTokenAuthConfig {
    /// The tokens written inline (`token` or `tokens`).
    pub fn inline_tokens(&self) -> Vec<String> {
        if self.token.is_empty() {
            self.tokens.clone()
        } else {
            vec![self.token.clone()]
        }
    }
}

/// The tokens of a token file's text: the first word of each non-blank line.
pub fn parse_token_file(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

impl ComponentConfig for BearerTokenAuthConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        if !self.token.is_empty() && !self.tokens.is_empty() {
            errors.push(c.setting(
                &["tokens"],
                "either tokens or token should be provided, not both",
            ));
        }
        if self.filename.is_empty() && self.inline_tokens().iter().all(String::is_empty) {
            errors.push(c.here(
                &["token"],
                "no bearer token provided (set token, tokens or filename)",
            ));
        }
        if !is_header_name(&self.header) {
            errors.push(c.setting(
                &["header"],
                format!("`{}` is not an HTTP header name", self.header),
            ));
        }
        if !self.scheme.is_empty() && !is_header_value(&self.scheme) {
            errors.push(c.setting(
                &["scheme"],
                "is not valid in an HTTP header (printable ASCII only)",
            ));
        }
        let key = if self.token.is_empty() {
            "tokens"
        } else {
            "token"
        };
        if self
            .inline_tokens()
            .iter()
            .any(|t| !is_header_value(t) || t.contains(' '))
        {
            errors.push(c.setting(
                &[key],
                "a token must be printable ASCII without spaces (it is sent in an HTTP header)",
            ));
        }
    }
}

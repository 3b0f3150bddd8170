//! The `headers_setter` extension's settings: headers an exporter sets on
//! each request, from a fixed value, the metadata a receiver kept
//! (`from_context`, with `include_metadata: true`) or the attributes its
//! authenticator gave (`from_attribute`), optionally on top of another
//! client authenticator's (`additional_auth`).

use serde::Deserialize;

use super::client::{is_header_name, is_header_value};
use super::{Check, ComponentConfig};
use crate::ConfigError;

/// `extensions.headers_setter`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersSetterConfig {
    /// The headers set, in order.
    pub headers: Vec<HeaderSetting>,
    /// A client authenticator (`bearertokenauth`, `basicauth`) whose
    /// header is set first.
    pub additional_auth: Option<String>,
}

/// What a [`HeaderSetting`] does with its header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderAction {
    /// Set only when the request does not have it.
    Insert,
    /// Set only when the request has it.
    Update,
    /// Always set (the default).
    #[default]
    Upsert,
    /// Remove.
    Delete,
}

/// `extensions.headers_setter.headers[]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderSetting {
    /// The header's name.
    pub key: String,
    /// What to do (default `upsert`).
    pub action: HeaderAction,
    /// A fixed value.
    pub value: Option<String>,
    /// The request metadata (header) of this name the receiver kept.
    pub from_context: Option<String>,
    /// The authentication attribute of this name (`subject`, `username`,
    /// `membership`, ...).
    pub from_attribute: Option<String>,
    /// The value when the source has none.
    pub default_value: Option<String>,
}

impl HeaderSetting {
    /// How many of the sources are set.
    fn sources(&self) -> usize {
        [&self.value, &self.from_context, &self.from_attribute]
            .iter()
            .filter(|s| s.is_some())
            .count()
    }
}

impl ComponentConfig for HeadersSetterConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        if self.headers.is_empty() {
            errors.push(c.here(&["headers"], "missing headers configuration"));
        }
        for (i, h) in self.headers.iter().enumerate() {
            let i = i.to_string();
            let path = |key: &'static str| [&"headers", &i.as_str(), &key].map(|s| *s);
            if h.key.is_empty() {
                errors.push(c.setting(&path("key"), "missing header name"));
            } else if !is_header_name(&h.key) {
                errors.push(c.setting(
                    &path("key"),
                    format!("`{}` is not an HTTP header name", h.key),
                ));
            }
            match (h.action, h.sources()) {
                (HeaderAction::Delete, _) => {}
                (_, 0) => errors.push(c.setting(
                    &["headers", i.as_str()],
                    "missing header source, must be 'from_context', 'from_attribute' or 'value'",
                )),
                (_, 1) => {}
                _ => errors.push(c.setting(
                    &["headers", i.as_str()],
                    "invalid header source, must be only one of 'from_context', 'from_attribute' or 'value'",
                )),
            }
            for (key, v) in [("value", &h.value), ("default_value", &h.default_value)] {
                if v.as_deref().is_some_and(|v| !is_header_value(v)) {
                    errors.push(c.setting(
                        &path(key),
                        "is not valid in an HTTP header (printable ASCII only)",
                    ));
                }
            }
        }
        if let Some(id) = &self.additional_auth {
            let key = ["additional_auth"];
            let before = errors.len();
            super::check_authenticator(c, &key, id, super::AuthSide::Client, errors);
            if errors.len() == before && super::auth::is_headers_setter(c.config, id) {
                errors.push(c.setting(
                    &key,
                    "must name a bearertokenauth or basicauth extension, not a headers_setter",
                ));
            }
        }
    }
}

//! The `basicauth` extension's settings: as a server, users and password
//! hashes in htpasswd format (inline and/or a file); as a client, the
//! username and password it sends.

use serde::Deserialize;

use super::{Check, ComponentConfig};
use crate::ConfigError;

/// `extensions.basicauth`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuthConfig {
    /// Server side: the accepted users.
    pub htpasswd: Option<HtpasswdConfig>,
    /// Client side: the credentials sent.
    pub client_auth: Option<ClientAuthConfig>,
}

/// `extensions.basicauth.htpasswd`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HtpasswdConfig {
    /// An htpasswd file, read at start.
    pub file: String,
    /// htpasswd lines; for a user in both, these win.
    pub inline: String,
}

/// `extensions.basicauth.client_auth`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientAuthConfig {
    /// The username (no `:`).
    pub username: String,
    /// The password.
    pub password: String,
}

impl ComponentConfig for BasicAuthConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        match (&self.htpasswd, &self.client_auth) {
            (Some(_), Some(_)) => errors.push(c.setting(
                &["client_auth"],
                "only one of `htpasswd` or `client_auth` can be specified",
            )),
            (None, None) => errors.push(c.here(
                &["htpasswd"],
                "no credential source provided (set htpasswd or client_auth)",
            )),
            _ => {}
        }
        if let Some(h) = &self.htpasswd
            && h.file.is_empty()
            && h.inline.trim().is_empty()
        {
            errors.push(c.setting(
                &["htpasswd"],
                "no credential source provided (set file or inline)",
            ));
        }
        if let Some(a) = &self.client_auth
            && a.username.contains(':')
        {
            errors.push(c.setting(
                &["client_auth", "username"],
                "invalid authorization format: a username cannot contain `:`",
            ));
        }
    }
}

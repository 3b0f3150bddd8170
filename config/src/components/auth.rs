//! `auth: {authenticator: <id>}` on a receiver's server or an exporter's
//! client, and the rule that the id names an authenticator extension of
//! the right side (server or client) that `service.extensions` lists.
//! Also the htpasswd reading shared by validation and the `basicauth`
//! runtime.

use serde::Deserialize;

use super::{BasicAuthConfig, BearerTokenAuthConfig, Check, HeadersSetterConfig, OidcConfig};
use crate::ConfigError;
use crate::types::ComponentId;

/// `auth` of a server or client.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The id of the authenticator extension (`bearertokenauth`,
    /// `basicauth/agents`, ...).
    pub authenticator: String,
}

/// Which side of a connection an authenticator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthSide {
    /// Checks the credentials of incoming requests (receivers).
    Server,
    /// Adds credentials to outgoing requests (exporters).
    Client,
}

/// Pushes a problem with the `auth` at `path` (the keys above `auth`) of
/// `c`: an id that is not a configured, enabled authenticator extension,
/// or one that cannot act on `side`. The Collector's messages.
pub fn check_auth(
    c: &Check<'_>,
    path: &[&str],
    auth: &AuthConfig,
    side: AuthSide,
    errors: &mut Vec<ConfigError>,
) {
    let mut key: Vec<&str> = path.to_vec();
    key.extend(["auth", "authenticator"]);
    check_authenticator(c, &key, &auth.authenticator, side, errors);
}

/// Pushes a problem with the authenticator id `id` written at `key` of
/// `c` (see [`check_auth`]).
pub fn check_authenticator(
    c: &Check<'_>,
    key: &[&str],
    id: &str,
    side: AuthSide,
    errors: &mut Vec<ConfigError>,
) {
    let id = id.trim();
    if id.is_empty() {
        errors.push(c.setting(key, "is required: the id of an authenticator extension"));
        return;
    }
    let not_found = format!(
        "failed to resolve authenticator \"{id}\": authenticator not found \
         (configure it under `extensions` and list it in `service.extensions`)"
    );
    let Some(ext) = super::enabled_extension(c.config, id) else {
        errors.push(c.setting(key, not_found));
        return;
    };
    let serves = if let Some(b) = ext.settings::<BasicAuthConfig>() {
        match side {
            AuthSide::Server => b.htpasswd.is_some(),
            AuthSide::Client => b.client_auth.is_some(),
        }
    } else if ext.settings::<OidcConfig>().is_some() {
        side == AuthSide::Server
    } else if ext.settings::<HeadersSetterConfig>().is_some() {
        side == AuthSide::Client
    } else {
        ext.settings::<BearerTokenAuthConfig>().is_some()
    };
    if !serves {
        let what = match side {
            AuthSide::Server => "a server authenticator",
            AuthSide::Client => "a client authenticator",
        };
        errors.push(c.setting(
            key,
            format!(
                "failed to resolve authenticator \"{id}\": requested authenticator is not {what}"
            ),
        ));
    }
}

/// Whether `id` names a `headers_setter` extension.
pub fn is_headers_setter(config: &crate::Config, id: &str) -> bool {
    id.trim()
        .parse::<ComponentId>()
        .ok()
        .and_then(|id| config.extensions.get(&id))
        .is_some_and(|e| e.settings::<HeadersSetterConfig>().is_some())
}

/// How one htpasswd entry's password is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// The password itself (also written `{PLAIN}password`).
    Plain(String),
    /// `{SHA}`: base64 of the password's SHA-1.
    Sha1(String),
    /// `{SSHA}`: base64 of SHA-1(password + salt) followed by the salt.
    SaltedSha1(String),
    /// bcrypt (`$2y$`, `$2a$`, `$2b$`, `$2x$`).
    Bcrypt(String),
    /// MD5-crypt, Apache's (`$apr1$`, htpasswd's default) or the original
    /// (`$1$`).
    Md5Crypt(String),
    /// SHA-crypt, SHA-256 (`$5$`) or SHA-512 (`$6$`).
    ShaCrypt(String),
}

/// Reads htpasswd text: one `user:hash` per line, split at the first `:`,
/// blank lines and lines without `:` skipped (as the Collector). The hash
/// scheme is told by its prefix, as go-htpasswd does; anything else is a
/// plain-text password.
pub fn parse_htpasswd(text: &str) -> Vec<(String, PasswordHash)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((user, hash)) = line.trim().split_once(':') else {
            continue;
        };
        let starts = |prefixes: &[&str]| prefixes.iter().any(|p| hash.starts_with(p));
        let hash = if starts(&["$apr1$", "$1$"]) {
            PasswordHash::Md5Crypt(hash.to_string())
        } else if let Some(h) = hash.strip_prefix("{SHA}") {
            PasswordHash::Sha1(h.to_string())
        } else if starts(&["$2y$", "$2a$", "$2b$", "$2x$"]) {
            PasswordHash::Bcrypt(hash.to_string())
        } else if let Some(h) = hash.strip_prefix("{SSHA}") {
            PasswordHash::SaltedSha1(h.to_string())
        } else if starts(&["$5$", "$6$"]) {
            PasswordHash::ShaCrypt(hash.to_string())
        } else {
            PasswordHash::Plain(hash.to_string())
        };
        out.push((user.to_string(), hash));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_lines_are_split_at_the_first_colon_by_scheme() {
        let text = "\n alice:s3cr:et \nbob:{SHA}abc\ncarol:{SSHA}xyz\ndave:$2y$05$abc\n\
                    eve:$apr1$s$h\nfay:$1$s$h\ngus:$6$s$h\nno colon\n";
        assert_eq!(
            parse_htpasswd(text),
            vec![
                ("alice".into(), PasswordHash::Plain("s3cr:et".into())),
                ("bob".into(), PasswordHash::Sha1("abc".into())),
                ("carol".into(), PasswordHash::SaltedSha1("xyz".into())),
                ("dave".into(), PasswordHash::Bcrypt("$2y$05$abc".into())),
                ("eve".into(), PasswordHash::Md5Crypt("$apr1$s$h".into())),
                ("fay".into(), PasswordHash::Md5Crypt("$1$s$h".into())),
                ("gus".into(), PasswordHash::ShaCrypt("$6$s$h".into())),
            ]
        );
    }
}

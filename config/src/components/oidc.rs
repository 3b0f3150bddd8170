//! The `oidc` extension's settings: the OpenID Connect providers whose
//! signed tokens (JWTs) a receiver accepts, read from the `attribute`
//! header. The flat keys (`issuer_url`, `audience`, ...) describe the
//! first provider; `providers` lists more, as the Collector's.

use serde::Deserialize;

use super::client::is_header_name;
use super::{Check, ComponentConfig};
use crate::ConfigError;

/// `extensions.oidc`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The header carrying `<scheme> <token>` (default `authorization`).
    pub attribute: String,
    /// The first provider's issuer (its `iss` and discovery base URL).
    pub issuer_url: String,
    /// A PEM file with the CA that signed the issuer's certificate.
    pub issuer_ca_path: String,
    /// The `aud` a token must name.
    pub audience: String,
    /// Accept a token whatever its `aud`.
    pub ignore_audience: bool,
    /// The claim that names the subject (default: `sub`).
    pub username_claim: String,
    /// The claim holding the subject's groups (`auth.membership`).
    pub groups_claim: String,
    /// More providers; a token is checked by the one its `iss` names.
    pub providers: Vec<OidcProvider>,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            attribute: "authorization".into(),
            issuer_url: String::new(),
            issuer_ca_path: String::new(),
            audience: String::new(),
            ignore_audience: false,
            username_claim: String::new(),
            groups_claim: String::new(),
            providers: Vec::new(),
        }
    }
}

/// `extensions.oidc.providers[]`: one OpenID Connect provider.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcProvider {
    /// The issuer: the `iss` a token must carry, and the base of
    /// `/.well-known/openid-configuration`.
    pub issuer_url: String,
    /// A PEM file with the CA that signed the issuer's certificate.
    pub issuer_ca_path: String,
    /// The `aud` a token must name.
    pub audience: String,
    /// Accept a token whatever its `aud`.
    pub ignore_audience: bool,
    /// Accept a token whatever its `iss` (one provider only).
    pub ignore_issuer: bool,
    /// The claim that names the subject (default: `sub`).
    pub username_claim: String,
    /// The claim holding the subject's groups (`auth.membership`).
    pub groups_claim: String,
    /// A JWKS file used instead of discovery and the issuer's keys; read
    /// again when a token names a key it does not hold.
    pub public_keys_file: String,
}

impl OidcConfig {
    /// Every provider: the flat keys' first (when `issuer_url` is set or
    /// `providers` is empty), then `providers`.
    pub fn all_providers(&self) -> Vec<OidcProvider> {
        let mut out = Vec::new();
        if !self.issuer_url.is_empty() || self.providers.is_empty() {
            out.push(OidcProvider {
                issuer_url: self.issuer_url.clone(),
                issuer_ca_path: self.issuer_ca_path.clone(),
                audience: self.audience.clone(),
                ignore_audience: self.ignore_audience,
                ignore_issuer: false,
                username_claim: self.username_claim.clone(),
                groups_claim: self.groups_claim.clone(),
                public_keys_file: String::new(),
            });
        }
        out.extend(self.providers.iter().cloned());
        out
    }
}

impl ComponentConfig for OidcConfig {
    fn check(&self, c: &Check<'_>, errors: &mut Vec<ConfigError>) {
        if !is_header_name(&self.attribute) {
            errors.push(c.setting(
                &["attribute"],
                format!("`{}` is not an HTTP header name", self.attribute),
            ));
        }
        let flat = !self.issuer_url.is_empty() || self.providers.is_empty();
        let providers = self.all_providers();
        let several = providers.len() > 1;
        let mut seen = std::collections::HashSet::new();
        for (i, p) in providers.iter().enumerate() {
            let index = if flat { i.checked_sub(1) } else { Some(i) };
            let index_text = index.map(|i| i.to_string());
            let path = |key: &'static str| -> Vec<&str> {
                match &index_text {
                    Some(i) => vec!["providers", i.as_str(), key],
                    None => vec![key],
                }
            };
            if p.issuer_url.is_empty() {
                errors.push(c.here(
                    &path("issuer_url"),
                    "no IssuerURL provided for the OIDC configuration",
                ));
            } else if !seen.insert(p.issuer_url.trim_end_matches('/')) {
                errors.push(c.setting(
                    &path("issuer_url"),
                    format!("duplicate issuer URL found: {}", p.issuer_url),
                ));
            }
            if p.public_keys_file.is_empty()
                && !p.issuer_url.is_empty()
                && !(p.issuer_url.starts_with("https://") || p.issuer_url.starts_with("http://"))
            {
                errors.push(c.setting(
                    &path("issuer_url"),
                    "must be an http:// or https:// URL (its discovery document is fetched)",
                ));
            }
            if p.audience.is_empty() && !p.ignore_audience {
                errors.push(c.here(
                    &path("audience"),
                    "no Audience provided for the OIDC configuration (or set ignore_audience: true)",
                ));
            }
            if p.ignore_issuer && several {
                errors.push(c.setting(
                    &path("ignore_issuer"),
                    "ignore_issuer cannot be true when multiple providers are configured",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flat_keys_are_the_first_provider() {
        let c = OidcConfig {
            issuer_url: "https://a".into(),
            audience: "x".into(),
            providers: vec![OidcProvider {
                issuer_url: "https://b".into(),
                ..OidcProvider::default()
            }],
            ..OidcConfig::default()
        };
        let all = c.all_providers();
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].issuer_url.as_str(), all[0].audience.as_str()),
            ("https://a", "x")
        );
        assert_eq!(all[1].issuer_url, "https://b");
        let only_list = OidcConfig {
            providers: vec![OidcProvider::default()],
            ..OidcConfig::default()
        };
        assert_eq!(only_list.all_providers().len(), 1);
    }
}

//! Authentication by the `bearertokenauth`, `basicauth` and `oidc`
//! extensions, and the `headers_setter` extension, as the OpenTelemetry
//! Collector does it. A receiver's server checks each request's headers
//! with a [`ServerAuth`] before reading its body; what it learns of the
//! sender ([`AuthData`]: the Collector's `client.Info.Auth`) goes with
//! the request's context through the pipelines. An exporter adds a
//! [`ClientAuth`]'s headers to every request (for `headers_setter`, from
//! the context of the requests sent). Both are
//! resolved from an `auth: {authenticator: <id>}` setting
//! ([`ServerAuth::resolve`], [`ClientAuth::resolve`]). A bearer token file
//! is read again when it changes ([`TokenSource::watcher`]), keeping the
//! last tokens while it is missing or empty. Comparisons of secrets take
//! the same time whatever bytes differ.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderName, HeaderValue};
use subtle::ConstantTimeEq;
use tern_config::components::{
    AuthConfig, BasicAuthConfig, BearerTokenAuthConfig, HeaderAction, HeadersSetterConfig,
    OidcConfig, PasswordHash, parse_htpasswd, parse_token_file,
};
use tern_config::{ComponentId, Config};

use crate::build::{Shutdown, Starter};
use crate::oidc::Oidc;
use crate::pdata::RequestContext;

/// One attribute an authenticator gives of a request's sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthValue {
    /// A string (`subject`, `username`, `raw`, a string claim).
    Text(String),
    /// A list of strings (`membership`, a claim holding strings).
    List(Vec<String>),
    /// Any other claim, as JSON.
    Json(String),
}

impl AuthValue {
    /// As a header value (`headers_setter` `from_attribute`): a string as
    /// it is, anything else as JSON.
    pub fn header_text(&self) -> String {
        match self {
            AuthValue::Text(s) | AuthValue::Json(s) => s.clone(),
            AuthValue::List(items) => serde_json::to_string(items).unwrap_or_default(),
        }
    }

    /// As a context value (`auth.<name>`): a string as it is, a list
    /// joined with `;`, anything else none (the Collector's attributes
    /// processor).
    pub fn context_text(&self) -> Option<String> {
        match self {
            AuthValue::Text(s) => Some(s.clone()),
            AuthValue::List(items) => Some(items.join(";")),
            AuthValue::Json(_) => None,
        }
    }
}

/// What an authenticator learnt of a request's sender: `username` and
/// `raw` for `basicauth`; `subject`, `membership`, `raw` and
/// `claims.<name>` for `oidc`; nothing for `bearertokenauth`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthData {
    attributes: Vec<(String, AuthValue)>,
}

impl AuthData {
    /// Sets attribute `name`.
    pub fn set(&mut self, name: &str, value: AuthValue) {
        self.attributes.retain(|(n, _)| n != name);
        self.attributes.push((name.to_string(), value));
    }

    /// Attribute `name`, if given.
    pub fn get(&self, name: &str) -> Option<&AuthValue> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Every attribute, in the order set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AuthValue)> {
        self.attributes.iter().map(|(n, v)| (n.as_str(), v))
    }
}

/// How often a token file is looked at for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Why an authenticator could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// The id names no enabled authenticator extension.
    #[error("failed to resolve authenticator \"{0}\": authenticator not found")]
    NotFound(String),
    /// The extension cannot act on this side.
    #[error(
        "failed to resolve authenticator \"{0}\": requested authenticator is not a {1} authenticator"
    )]
    WrongSide(String, &'static str),
    /// A credentials file could not be used.
    #[error("extensions.{id}: {path}: {message}")]
    File {
        /// The extension.
        id: String,
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A setting that cannot make a header or an htpasswd entry.
    #[error("extensions.{0}: {1}")]
    Invalid(String, String),
}

/// Why a request was refused: the Collector's messages, which are what the
/// client is told (they name no secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential in the bearer header.
    #[error("missing or empty authorization header: {0}")]
    MissingHeader(String),
    /// A bearer credential that matches no `<scheme> <token>`.
    #[error("provided authorization does not match expected scheme or token")]
    Mismatch,
    /// No `Authorization` header for basic auth.
    #[error("no basic auth provided")]
    NoBasic,
    /// `Authorization` not starting with `Basic `.
    #[error("invalid authorization scheme prefix")]
    BadPrefix,
    /// Not base64 of `user:password`.
    #[error("invalid authorization format")]
    BadFormat,
    /// Unknown user or wrong password.
    #[error("invalid credentials")]
    BadCredentials,
    /// An `oidc` token refused; the client is told nothing more, the
    /// reason is logged.
    #[error("authentication didn't succeed")]
    Token(String),
    /// The `oidc` provider's keys have not loaded yet: try again later.
    #[error("authentication is not available yet; retry later")]
    Unavailable,
}

impl AuthError {
    /// Why, for the log (more than the client is told).
    pub fn detail(&self) -> String {
        match self {
            AuthError::Token(detail) => detail.clone(),
            other => other.to_string(),
        }
    }

    /// Whether the client should try again later (503 / `UNAVAILABLE`)
    /// rather than being refused (401 / `UNAUTHENTICATED`).
    pub fn retryable(&self) -> bool {
        matches!(self, AuthError::Unavailable)
    }
}

/// Bearer tokens, inline or from a file that is read again when it
/// changes.
#[derive(Debug)]
pub struct TokenSource {
    /// The file, when tokens come from one.
    file: Option<PathBuf>,
    /// The extension's id, for logs.
    id: String,
    /// The tokens in force.
    tokens: RwLock<Arc<Vec<String>>>,
    /// The file's text when last read (or last found unusable).
    seen: Mutex<Option<String>>,
}

impl TokenSource {
    fn new(id: &str, config: &BearerTokenAuthConfig) -> Result<TokenSource, AuthSetupError> {
        if config.filename.is_empty() {
            return Ok(TokenSource {
                file: None,
                id: id.to_string(),
                tokens: RwLock::new(Arc::new(config.inline_tokens())),
                seen: Mutex::new(None),
            });
        }
        let failed = |message: String| AuthSetupError::File {
            id: id.to_string(),
            path: config.filename.clone(),
            message,
        };
        let text = std::fs::read_to_string(&config.filename).map_err(|e| failed(e.to_string()))?;
        let tokens = parse_token_file(text.trim());
        if tokens.is_empty() {
            return Err(failed("holds no token".into()));
        }
        Ok(TokenSource {
            file: Some(PathBuf::from(&config.filename)),
            id: id.to_string(),
            tokens: RwLock::new(Arc::new(tokens)),
            seen: Mutex::new(Some(text)),
        })
    }

    /// The tokens in force.
    pub fn tokens(&self) -> Arc<Vec<String>> {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the file again; new tokens replace the old ones, a missing
    /// or empty file keeps them (with a warning, once per change).
    pub fn reload(&self) {
        let Some(file) = &self.file else {
            return;
        };
        let text = std::fs::read_to_string(file);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let key = match &text {
            Ok(t) => t.clone(),
            Err(e) => format!("\0{e}"),
        };
        if seen.as_deref() == Some(key.as_str()) {
            return;
        }
        *seen = Some(key);
        let tokens = text.as_deref().map(|t| parse_token_file(t.trim()));
        match tokens {
            Ok(tokens) if !tokens.is_empty() => {
                tracing::info!(extension = %self.id, file = %file.display(), "token file changed; new tokens in force");
                *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(tokens);
            }
            Ok(_) => {
                tracing::warn!(extension = %self.id, file = %file.display(), "failed to reload credentials file, keeping last value: it holds no token");
            }
            Err(e) => {
                tracing::warn!(extension = %self.id, file = %file.display(), error = %e, "failed to reload credentials file, keeping last value");
            }
        }
    }

    /// A task reading the file again every [`RELOAD_INTERVAL`] (by content,
    /// so an atomic rename or a Kubernetes secret's symlink swap is seen);
    /// `None` for inline tokens.
    pub fn watcher(self: &Arc<Self>) -> Option<Starter> {
        self.file.as_ref()?;
        let source = self.clone();
        Some(Box::new(move |mut shutdown: Shutdown| {
            Box::pin(async move {
                let mut tick = tokio::time::interval(RELOAD_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {
                            let source = source.clone();
                            let _ = tokio::task::spawn_blocking(move || source.reload()).await;
                        }
                        changed = shutdown.changed() => {
                            if changed.is_err() || *shutdown.borrow() {
                                return;
                            }
                        }
                    }
                }
            })
        }))
    }
}

/// Whether `given` equals one of `expected`, each compared in constant
/// time and all of them compared.
fn matches_any<'a>(given: &[u8], expected: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut found = subtle::Choice::from(0);
    for e in expected {
        found |= given.ct_eq(e);
    }
    found.into()
}

/// The header value a bearer client sends and a server expects.
fn bearer_value(scheme: &str, token: &str) -> String {
    if scheme.is_empty() {
        token.to_string()
    } else {
        format!("{scheme} {token}")
    }
}

/// Checks the credentials of incoming requests.
#[derive(Debug)]
pub enum ServerAuth {
    /// `bearertokenauth`: the header's first value must be `<scheme> <token>`.
    Bearer {
        /// The header read.
        header: HeaderName,
        /// Its name as configured, for messages.
        header_text: String,
        /// The scheme word (empty: the token alone).
        scheme: String,
        /// The accepted tokens.
        tokens: Arc<TokenSource>,
    },
    /// `basicauth`: `Authorization: Basic base64(user:password)` of an htpasswd user.
    Basic {
        /// Users and their password hashes.
        users: HashMap<String, PasswordHash>,
        /// SHA-256 of `user\0password` pairs already verified, so that a
        /// bcrypt hash is computed once per credential, not per request.
        verified: Mutex<std::collections::HashSet<[u8; 32]>>,
    },
    /// `oidc`: a JWT signed by a configured OpenID Connect provider.
    Oidc(Arc<Oidc>),
}

/// Most verified credentials [`ServerAuth::Basic`] remembers.
const VERIFIED_CACHE: usize = 1024;

/// The enabled extension `auth.authenticator` names.
fn extension<'c>(
    config: &'c Config,
    auth: &AuthConfig,
) -> Result<&'c tern_config::Component, AuthSetupError> {
    let not_found = || AuthSetupError::NotFound(auth.authenticator.clone());
    let id: ComponentId = auth.authenticator.trim().parse().map_err(|_| not_found())?;
    if !config.service.extensions.iter().any(|r| r.id == id) {
        return Err(not_found());
    }
    config.extensions.get(&id).ok_or_else(not_found)
}

impl ServerAuth {
    /// The authenticator `auth` names.
    pub fn resolve(config: &Config, auth: &AuthConfig) -> Result<Arc<ServerAuth>, AuthSetupError> {
        let ext = extension(config, auth)?;
        ServerAuth::of(ext)?
            .map(Arc::new)
            .ok_or_else(|| AuthSetupError::WrongSide(auth.authenticator.clone(), "server"))
    }

    /// The server side of extension `ext`, reading its files; `None` when
    /// it has none.
    pub fn of(ext: &tern_config::Component) -> Result<Option<ServerAuth>, AuthSetupError> {
        let id = ext.id.to_string();
        if let Some(o) = ext.settings::<OidcConfig>() {
            return Ok(Some(ServerAuth::Oidc(Arc::new(Oidc::new(&id, o)?))));
        }
        if let Some(b) = ext.settings::<BearerTokenAuthConfig>() {
            let header = HeaderName::from_bytes(b.header.as_bytes())
                .map_err(|e| AuthSetupError::Invalid(id.clone(), format!("header: {e}")))?;
            return Ok(Some(ServerAuth::Bearer {
                header,
                header_text: b.header.clone(),
                scheme: b.scheme.clone(),
                tokens: Arc::new(TokenSource::new(&id, b)?),
            }));
        }
        let Some(h) = ext
            .settings::<BasicAuthConfig>()
            .and_then(|b| b.htpasswd.as_ref())
        else {
            return Ok(None);
        };
        let mut users = HashMap::new();
        if !h.file.is_empty() {
            let text = std::fs::read_to_string(&h.file).map_err(|e| AuthSetupError::File {
                id: id.clone(),
                path: h.file.clone(),
                message: e.to_string(),
            })?;
            users.extend(parse_htpasswd(&text));
        }
        // Inline entries win over the file's for the same user.
        users.extend(parse_htpasswd(&h.inline));
        Ok(Some(ServerAuth::Basic {
            users,
            verified: Mutex::default(),
        }))
    }

    /// A task keeping its credentials current (a token file, an OpenID
    /// provider's keys), if it has one.
    pub fn watcher(&self) -> Option<Starter> {
        match self {
            ServerAuth::Bearer { tokens, .. } => tokens.watcher(),
            ServerAuth::Basic { .. } => None,
            ServerAuth::Oidc(oidc) => Some(oidc.loader()),
        }
    }

    /// Checks a request's headers (gRPC metadata included); what it learnt
    /// of the sender, if anything.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<AuthData>>, AuthError> {
        match self {
            ServerAuth::Oidc(oidc) => oidc.authenticate(headers).await.map(|d| Some(Arc::new(d))),
            ServerAuth::Bearer {
                header,
                header_text,
                scheme,
                tokens,
            } => {
                let given = headers
                    .get(header)
                    .map(HeaderValue::as_bytes)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| AuthError::MissingHeader(header_text.clone()))?;
                let tokens = tokens.tokens();
                let expected: Vec<String> =
                    tokens.iter().map(|t| bearer_value(scheme, t)).collect();
                if matches_any(given, expected.iter().map(|e| e.as_bytes())) {
                    Ok(None)
                } else {
                    Err(AuthError::Mismatch)
                }
            }
            ServerAuth::Basic { users, verified } => {
                let value = headers
                    .get(http::header::AUTHORIZATION)
                    .ok_or(AuthError::NoBasic)?
                    .as_bytes();
                let prefix = b"basic ";
                if value.len() < prefix.len() || !value[..prefix.len()].eq_ignore_ascii_case(prefix)
                {
                    return Err(AuthError::BadPrefix);
                }
                let decoded = BASE64
                    .decode(&value[prefix.len()..])
                    .map_err(|_| AuthError::BadFormat)?;
                let text = String::from_utf8(decoded).map_err(|_| AuthError::BadFormat)?;
                let (user, password) = text.split_once(':').ok_or(AuthError::BadFormat)?;
                let stored = users.get(user).ok_or(AuthError::BadCredentials)?;
                let key: [u8; 32] = {
                    let d = ring::digest::digest(
                        &ring::digest::SHA256,
                        format!("{user}\0{password}").as_bytes(),
                    );
                    let mut k = [0; 32];
                    k.copy_from_slice(d.as_ref());
                    k
                };
                let mut cache = verified.lock().unwrap_or_else(|e| e.into_inner());
                if !cache.contains(&key) {
                    if !verify_password(stored, password) {
                        return Err(AuthError::BadCredentials);
                    }
                    if cache.len() >= VERIFIED_CACHE {
                        cache.clear();
                    }
                    cache.insert(key);
                }
                let mut data = AuthData::default();
                data.set("username", AuthValue::Text(user.to_string()));
                data.set(
                    "raw",
                    AuthValue::Text(String::from_utf8_lossy(&value[prefix.len()..]).into_owned()),
                );
                Ok(Some(Arc::new(data)))
            }
        }
    }
}

/// SHA-1 of `parts` (what `{SHA}` and `{SSHA}` store).
fn sha1(parts: &[&[u8]]) -> ring::digest::Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish()
}

/// Whether `password` matches `stored`, as go-htpasswd checks each scheme.
fn verify_password(stored: &PasswordHash, password: &str) -> bool {
    match stored {
        PasswordHash::Plain(p) => {
            let plain = format!("{{PLAIN}}{password}");
            matches_any(
                p.as_bytes(),
                [password.as_bytes(), plain.as_bytes()].into_iter(),
            )
        }
        PasswordHash::Sha1(b64) => {
            let given = BASE64.encode(sha1(&[password.as_bytes()]));
            given.as_bytes().ct_eq(b64.as_bytes()).into()
        }
        PasswordHash::SaltedSha1(b64) => match BASE64.decode(b64) {
            Ok(raw) if raw.len() > 20 => {
                let (digest, salt) = raw.split_at(20);
                sha1(&[password.as_bytes(), salt])
                    .as_ref()
                    .ct_eq(digest)
                    .into()
            }
            _ => false,
        },
        PasswordHash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
        PasswordHash::Md5Crypt(hash) => md5_crypt(password, hash)
            .is_some_and(|made| made.as_bytes().ct_eq(hash.as_bytes()).into()),
        PasswordHash::ShaCrypt(hash) if hash.starts_with("$5$") => {
            sha_crypt::sha256_check(password, hash).is_ok()
        }
        PasswordHash::ShaCrypt(hash) => sha_crypt::sha512_check(password, hash).is_ok(),
    }
}

/// The MD5-crypt hash of `password` with the magic (`$apr1$` or `$1$`) and
/// salt of `stored` (Poul-Henning Kamp's algorithm, as Apache's htpasswd
/// and go-htpasswd compute it); `None` when `stored` is not one.
fn md5_crypt(password: &str, stored: &str) -> Option<String> {
    use md5::{Digest, Md5};
    let magic = ["$apr1$", "$1$"]
        .into_iter()
        .find(|m| stored.starts_with(m))?;
    let rest = &stored[magic.len()..];
    let salt = rest.split('$').next()?;
    let salt = &salt.as_bytes()[..salt.len().min(8)];
    let pw = password.as_bytes();
    let alternate = Md5::new()
        .chain_update(pw)
        .chain_update(salt)
        .chain_update(pw)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(pw)
        .chain_update(magic)
        .chain_update(salt);
    for chunk in pw.chunks(16) {
        ctx.update(&alternate[..chunk.len()]);
    }
    let mut n = pw.len();
    while n > 0 {
        ctx.update(if n & 1 == 1 { &[0u8][..] } else { &pw[..1] });
        n >>= 1;
    }
    let mut digest = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(pw)
        } else {
            c.update(digest)
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(pw);
        }
        if round & 1 == 1 {
            c.update(digest)
        } else {
            c.update(pw)
        }
        digest = c.finalize();
    }
    const CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = format!("{magic}{}$", String::from_utf8_lossy(salt));
    let mut put = |mut v: u32, n: usize| {
        for _ in 0..n {
            out.push(char::from(CHARS[(v & 0x3f) as usize]));
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put(
            (u32::from(digest[a]) << 16) | (u32::from(digest[b]) << 8) | u32::from(digest[c]),
            4,
        );
    }
    put(u32::from(digest[11]), 2);
    Some(out)
}

/// Adds credentials to outgoing requests.
#[derive(Debug)]
pub enum ClientAuth {
    /// `bearertokenauth`: `<header>: <scheme> <first token>`.
    Bearer {
        /// The header set.
        header: HeaderName,
        /// The scheme word (empty: the token alone).
        scheme: String,
        /// The tokens; the first is sent.
        tokens: Arc<TokenSource>,
    },
    /// `basicauth` `client_auth`: `Authorization: Basic base64(user:password)`.
    Basic(HeaderValue),
    /// `headers_setter`: headers from fixed values, the context of the
    /// request sent or its sender's authentication, on top of
    /// `additional_auth`'s.
    HeadersSetter {
        /// The headers, in order.
        headers: Vec<SetHeader>,
        /// `additional_auth`, applied first.
        additional: Option<Arc<ClientAuth>>,
    },
}

/// One header of a `headers_setter`.
#[derive(Debug)]
pub struct SetHeader {
    name: HeaderName,
    action: HeaderAction,
    source: HeaderSource,
    default: Option<HeaderValue>,
}

/// Where a [`SetHeader`]'s value comes from.
#[derive(Debug)]
enum HeaderSource {
    /// `value`.
    Value(HeaderValue),
    /// `from_context`: [`RequestContext::lookup`].
    Context(String),
    /// `from_attribute`: the sender's [`AuthData`].
    Attribute(String),
    /// None (`delete`).
    Nothing,
}

impl SetHeader {
    fn new(
        id: &str,
        h: &tern_config::components::HeaderSetting,
    ) -> Result<SetHeader, AuthSetupError> {
        let invalid = |what: &str| {
            AuthSetupError::Invalid(
                id.to_string(),
                format!("headers: invalid {what} of `{}`", h.key),
            )
        };
        let value = |v: &str| HeaderValue::from_str(v).map_err(|_| invalid("value"));
        let source = match (&h.value, &h.from_context, &h.from_attribute) {
            (Some(v), _, _) => HeaderSource::Value(value(v)?),
            (_, Some(k), _) => HeaderSource::Context(k.clone()),
            (_, _, Some(a)) => HeaderSource::Attribute(a.clone()),
            _ => HeaderSource::Nothing,
        };
        Ok(SetHeader {
            name: HeaderName::from_bytes(h.key.to_ascii_lowercase().as_bytes())
                .map_err(|_| invalid("name"))?,
            action: h.action,
            source,
            default: h.default_value.as_deref().map(value).transpose()?,
        })
    }

    /// The value for a request of `context`: its source's, else the
    /// default; none when neither has one.
    fn value(&self, context: &RequestContext) -> Option<HeaderValue> {
        let found = match &self.source {
            HeaderSource::Value(v) => return Some(v.clone()),
            HeaderSource::Context(key) => context.lookup(key),
            HeaderSource::Attribute(name) => context
                .auth
                .as_ref()
                .and_then(|a| a.get(name))
                .map(AuthValue::header_text),
            HeaderSource::Nothing => None,
        };
        found
            .and_then(|v| HeaderValue::from_str(&v).ok())
            .or_else(|| self.default.clone())
    }

    /// Applies its action on `headers` for a request of `context`.
    fn apply(&self, headers: &mut HeaderMap, context: &RequestContext) {
        if self.action == HeaderAction::Delete {
            headers.remove(&self.name);
            return;
        }
        let Some(value) = self.value(context) else {
            return;
        };
        let present = headers.contains_key(&self.name);
        let set = match self.action {
            HeaderAction::Insert => !present,
            HeaderAction::Update => present,
            HeaderAction::Upsert | HeaderAction::Delete => true,
        };
        if set {
            headers.insert(self.name.clone(), value);
        }
    }
}

impl ClientAuth {
    /// The authenticator `auth` names.
    pub fn resolve(config: &Config, auth: &AuthConfig) -> Result<Arc<ClientAuth>, AuthSetupError> {
        let ext = extension(config, auth)?;
        ClientAuth::of(config, ext)?
            .map(Arc::new)
            .ok_or_else(|| AuthSetupError::WrongSide(auth.authenticator.clone(), "client"))
    }

    /// The client side of extension `ext` of `config`, reading its files;
    /// `None` when it has none.
    pub fn of(
        config: &Config,
        ext: &tern_config::Component,
    ) -> Result<Option<ClientAuth>, AuthSetupError> {
        let id = ext.id.to_string();
        if let Some(h) = ext.settings::<HeadersSetterConfig>() {
            let headers = h
                .headers
                .iter()
                .map(|s| SetHeader::new(&id, s))
                .collect::<Result<_, _>>()?;
            let additional = match &h.additional_auth {
                None => None,
                Some(other) => Some(ClientAuth::resolve(
                    config,
                    &AuthConfig {
                        authenticator: other.clone(),
                    },
                )?),
            };
            return Ok(Some(ClientAuth::HeadersSetter {
                headers,
                additional,
            }));
        }
        if let Some(b) = ext.settings::<BearerTokenAuthConfig>() {
            let header = HeaderName::from_bytes(b.header.as_bytes())
                .map_err(|e| AuthSetupError::Invalid(id.clone(), format!("header: {e}")))?;
            return Ok(Some(ClientAuth::Bearer {
                header,
                scheme: b.scheme.clone(),
                tokens: Arc::new(TokenSource::new(&id, b)?),
            }));
        }
        let Some(c) = ext
            .settings::<BasicAuthConfig>()
            .and_then(|b| b.client_auth.as_ref())
        else {
            return Ok(None);
        };
        let token = BASE64.encode(format!("{}:{}", c.username, c.password));
        let value = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|e| AuthSetupError::Invalid(id, format!("client_auth: {e}")))?;
        Ok(Some(ClientAuth::Basic(value)))
    }

    /// A task keeping its credentials file current, if it has one.
    pub fn watcher(&self) -> Option<Starter> {
        match self {
            ClientAuth::Bearer { tokens, .. } => tokens.watcher(),
            ClientAuth::Basic(_) => None,
            ClientAuth::HeadersSetter { additional, .. } => {
                additional.as_ref().and_then(|a| a.watcher())
            }
        }
    }

    /// Whether its headers depend on the request's context (so requests
    /// of different senders must be sent apart).
    pub fn per_request(&self) -> bool {
        match self {
            ClientAuth::HeadersSetter { headers, .. } => headers.iter().any(|h| {
                matches!(
                    h.source,
                    HeaderSource::Context(_) | HeaderSource::Attribute(_)
                )
            }),
            ClientAuth::Bearer { .. } | ClientAuth::Basic(_) => false,
        }
    }

    /// Sets its headers on `headers` (the token in force now) for a
    /// request of `context`.
    pub fn apply(&self, headers: &mut HeaderMap, context: &RequestContext) {
        match self {
            ClientAuth::HeadersSetter {
                headers: set,
                additional,
            } => {
                if let Some(a) = additional {
                    a.apply(headers, context);
                }
                for h in set {
                    h.apply(headers, context);
                }
            }
            ClientAuth::Bearer {
                header,
                scheme,
                tokens,
            } => {
                let tokens = tokens.tokens();
                let value = tokens
                    .first()
                    .and_then(|t| HeaderValue::from_str(&bearer_value(scheme, t)).ok());
                match value {
                    Some(mut v) => {
                        v.set_sensitive(true);
                        headers.insert(header.clone(), v);
                    }
                    None => {
                        headers.remove(header);
                    }
                }
            }
            ClientAuth::Basic(value) => {
                let mut v = value.clone();
                v.set_sensitive(true);
                headers.insert(http::header::AUTHORIZATION, v);
            }
        }
    }
}

/// Builds an authenticator extension on its own: its files are read now,
/// so a missing or unusable one stops the start even when no receiver or
/// exporter uses it yet.
pub fn build_extension(
    ctx: &crate::build::Context<'_>,
    c: &tern_config::Component,
) -> Result<crate::build::Built, crate::build::BuildError> {
    let failed = |e: AuthSetupError| crate::build::BuildError::Component(Box::new(e));
    ServerAuth::of(c).map_err(failed)?;
    ClientAuth::of(ctx.config, c).map_err(failed)?;
    Ok(crate::build::Built::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        tern_config::load_sources(&[("t.yaml".into(), yaml.to_string())], &|_| None).unwrap()
    }

    fn with_extension(ext: &str) -> Config {
        config(&format!(
            "receivers: {{otlp: {{protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}}}}}
exporters: {{nop: }}
extensions:
  {ext}
service:
  extensions: [{}]
  pipelines: {{traces: {{receivers: [otlp], exporters: [nop]}}}}
",
            ext.split(':').next().unwrap()
        ))
    }

    impl ServerAuth {
        /// [`ServerAuth::authenticate`], waited for, without its data.
        fn check(&self, headers: &HeaderMap) -> Result<(), AuthError> {
            self.data(headers).map(|_| ())
        }

        fn data(&self, headers: &HeaderMap) -> Result<Option<Arc<AuthData>>, AuthError> {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(self.authenticate(headers))
        }
    }

    fn server(config: &Config, id: &str) -> Arc<ServerAuth> {
        ServerAuth::resolve(
            config,
            &AuthConfig {
                authenticator: id.into(),
            },
        )
        .unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn bearer_compares_the_whole_value_scheme_included() {
        let c = with_extension("bearertokenauth: {tokens: [one, two]}");
        let auth = server(&c, "bearertokenauth");
        assert_eq!(
            auth.check(&headers(&[("authorization", "Bearer two")])),
            Ok(())
        );
        assert_eq!(
            auth.check(&headers(&[("authorization", "Bearer one")])),
            Ok(())
        );
        for wrong in [
            "bearer one",
            "Bearer three",
            "one",
            "Basic one",
            "Bearer  one",
        ] {
            assert_eq!(
                auth.check(&headers(&[("authorization", wrong)])),
                Err(AuthError::Mismatch),
                "{wrong}"
            );
        }
        assert_eq!(
            auth.check(&HeaderMap::new()).unwrap_err().to_string(),
            "missing or empty authorization header: Authorization"
        );
    }

    #[test]
    fn bearer_with_its_own_header_and_no_scheme() {
        let c = with_extension("bearertokenauth: {token: abc, header: X-Api-Key, scheme: \"\"}");
        let auth = server(&c, "bearertokenauth");
        assert_eq!(auth.check(&headers(&[("x-api-key", "abc")])), Ok(()));
        assert!(auth.check(&headers(&[("authorization", "abc")])).is_err());
        let client = ClientAuth::resolve(
            &c,
            &AuthConfig {
                authenticator: "bearertokenauth".into(),
            },
        )
        .unwrap();
        let mut h = HeaderMap::new();
        client.apply(&mut h, &RequestContext::default());
        assert_eq!(h.get("x-api-key").unwrap(), "abc");
    }

    #[test]
    fn a_token_file_is_read_again_and_kept_while_broken() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "first # a comment\n").unwrap();
        let c = with_extension(&format!(
            "bearertokenauth: {{filename: {}}}",
            file.display()
        ));
        let auth = server(&c, "bearertokenauth");
        let ServerAuth::Bearer { tokens, .. } = auth.as_ref() else {
            panic!("not bearer")
        };
        let ok = |t: &str| {
            auth.check(&headers(&[("authorization", &format!("Bearer {t}"))]))
                .is_ok()
        };
        assert!(ok("first") && !ok("second"));
        std::fs::write(&file, "second\nthird extra words\n").unwrap();
        tokens.reload();
        assert!(!ok("first") && ok("second") && ok("third"));
        std::fs::write(&file, "  \n").unwrap();
        tokens.reload();
        assert!(ok("second"), "an empty file keeps the last tokens");
        std::fs::remove_file(&file).unwrap();
        tokens.reload();
        assert!(ok("second"), "a missing file keeps the last tokens");
    }

    #[test]
    fn basic_checks_every_supported_hash_scheme() {
        let salt = b"salt";
        let ssha = BASE64.encode([sha1(&[b"pw4", salt]).as_ref(), salt].concat());
        let sha = BASE64.encode(sha1(&[b"pw2"]));
        let bcrypt = bcrypt::hash("pw5", 4).unwrap();
        // Made by `openssl passwd -apr1 / -1 / -5 / -6`.
        let apr1 = "$apr1$r3Ld9Vx2$is2fTNh7NjYOxJQsN1Y8d.";
        let md5 = "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1";
        let sha256 = "$5$saltstring$4mLzDd7PmpYGnmV6HHYAR6tJydOUyhkrRSQDy8q2eK8";
        let sha512 = "$6$saltstring$FAGYDyoYriJZZozrqxKlj3e8sB/i7oiBKr0IsSILeeFjOstTzTN7VBrJXtFNTHuRzUnhy.z43X6Jd3KbHZ.me/";
        let c = with_extension(&format!(
            "basicauth: {{htpasswd: {{inline: \"plain:pw1\\nsha:{{SHA}}{sha}\\nmarked:{{PLAIN}}pw3\\nssha:{{SSHA}}{ssha}\\nbc:{bcrypt}\\napr1:{apr1}\\nmd5:{md5}\\nsha256:{sha256}\\nsha512:{sha512}\"}}}}"
        ));
        let auth = server(&c, "basicauth");
        let basic = |user: &str, pw: &str| {
            let v = format!("Basic {}", BASE64.encode(format!("{user}:{pw}")));
            auth.check(&headers(&[("authorization", &v)]))
        };
        for (user, pw) in [
            ("plain", "pw1"),
            ("sha", "pw2"),
            ("marked", "pw3"),
            ("ssha", "pw4"),
            ("bc", "pw5"),
            ("bc", "pw5"),
            ("apr1", "my pass"),
            ("md5", "secret"),
            ("sha256", "hello"),
            ("sha512", "hello"),
        ] {
            assert_eq!(basic(user, pw), Ok(()), "{user}");
            assert_eq!(
                basic(user, "wrong"),
                Err(AuthError::BadCredentials),
                "{user}"
            );
        }
        assert_eq!(basic("nobody", "pw1"), Err(AuthError::BadCredentials));
        assert_eq!(auth.check(&HeaderMap::new()), Err(AuthError::NoBasic));
        assert_eq!(
            auth.check(&headers(&[("authorization", "Bearer x")])),
            Err(AuthError::BadPrefix)
        );
        assert_eq!(
            auth.check(&headers(&[("authorization", "basic !!")])),
            Err(AuthError::BadFormat)
        );
    }

    #[test]
    fn an_htpasswd_file_is_read_and_inline_entries_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("htpasswd");
        std::fs::write(
            &file,
            "alice:from-file
bob:bobs
",
        )
        .unwrap();
        let c = with_extension(&format!(
            "basicauth: {{htpasswd: {{file: {}, inline: 'alice:inline'}}}}",
            file.display()
        ));
        let auth = server(&c, "basicauth");
        let basic = |user: &str, pw: &str| {
            let v = format!("Basic {}", BASE64.encode(format!("{user}:{pw}")));
            auth.check(&headers(&[("authorization", &v)])).is_ok()
        };
        assert!(basic("alice", "inline") && !basic("alice", "from-file"));
        assert!(basic("bob", "bobs"));
    }

    #[test]
    fn a_missing_or_empty_token_file_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        let c = with_extension(&format!(
            "bearertokenauth: {{filename: {}}}",
            file.display()
        ));
        let ext = c.extensions.values().next().unwrap();
        assert!(ServerAuth::of(ext).is_err(), "missing");
        std::fs::write(&file, " \n").unwrap();
        let e = ServerAuth::of(ext).unwrap_err().to_string();
        assert!(e.contains("holds no token"), "{e}");
    }

    #[test]
    fn basic_client_sends_the_credentials_and_is_no_server() {
        let c = with_extension("basicauth: {client_auth: {username: u, password: p}}");
        let client = ClientAuth::resolve(
            &c,
            &AuthConfig {
                authenticator: "basicauth".into(),
            },
        )
        .unwrap();
        let mut h = HeaderMap::new();
        client.apply(&mut h, &RequestContext::default());
        assert_eq!(h.get("authorization").unwrap(), "Basic dTpw");
        let e = ServerAuth::resolve(
            &c,
            &AuthConfig {
                authenticator: "basicauth".into(),
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a server authenticator"), "{e}");
    }

    #[test]
    fn basic_gives_the_username_and_raw_credentials() {
        let c = with_extension("basicauth: {htpasswd: {inline: 'alice:pw'}}");
        let auth = server(&c, "basicauth");
        let v = format!("Basic {}", BASE64.encode("alice:pw"));
        let data = auth
            .data(&headers(&[("authorization", &v)]))
            .unwrap()
            .unwrap();
        assert_eq!(data.get("username"), Some(&AuthValue::Text("alice".into())));
        assert_eq!(
            data.get("raw"),
            Some(&AuthValue::Text(BASE64.encode("alice:pw")))
        );
        let bearer = with_extension("bearertokenauth: {token: t}");
        let none = server(&bearer, "bearertokenauth")
            .data(&headers(&[("authorization", "Bearer t")]))
            .unwrap();
        assert_eq!(none, None, "bearertokenauth gives no attributes");
    }

    #[test]
    fn headers_setter_sets_each_header_by_its_action_and_source() {
        let c = config(
            "receivers: {otlp: {protocols: {grpc: {endpoint: 127.0.0.1:0}}}}
exporters: {nop: }
extensions:
  bearertokenauth: {token: t}
  headers_setter:
    additional_auth: bearertokenauth
    headers:
      - {key: X-Tenant, from_context: x-tenant, default_value: none}
      - {key: X-Subject, from_attribute: subject}
      - {key: X-Groups, from_attribute: membership}
      - {key: X-Fixed, value: v, action: insert}
      - {key: X-Old, action: delete}
      - {key: X-Only-If-There, value: u, action: update}
      - {key: X-Address, from_context: client.address}
service:
  extensions: [bearertokenauth, headers_setter]
  pipelines: {traces: {receivers: [otlp], exporters: [nop]}}
",
        );
        let client = ClientAuth::resolve(
            &c,
            &AuthConfig {
                authenticator: "headers_setter".into(),
            },
        )
        .unwrap();
        assert!(client.per_request());
        let mut auth = AuthData::default();
        auth.set("subject", AuthValue::Text("svc-a".into()));
        auth.set("membership", AuthValue::List(vec!["a".into(), "b".into()]));
        let context = RequestContext {
            peer: Some("10.1.2.3:999".parse().unwrap()),
            metadata: vec![("x-tenant".into(), "acme".into())],
            auth: Some(Arc::new(auth)),
            ..RequestContext::default()
        };
        let mut h = headers(&[("x-old", "1"), ("x-fixed", "kept")]);
        client.apply(&mut h, &context);
        let get = |h: &HeaderMap, k: &str| h.get(k).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(get(&h, "authorization").as_deref(), Some("Bearer t"));
        assert_eq!(get(&h, "x-tenant").as_deref(), Some("acme"));
        assert_eq!(get(&h, "x-subject").as_deref(), Some("svc-a"));
        assert_eq!(get(&h, "x-groups").as_deref(), Some(r#"["a","b"]"#));
        assert_eq!(get(&h, "x-fixed").as_deref(), Some("kept"), "insert keeps");
        assert_eq!(get(&h, "x-old"), None);
        assert_eq!(get(&h, "x-only-if-there"), None, "update needs the header");
        assert_eq!(get(&h, "x-address").as_deref(), Some("10.1.2.3"));
        let mut h = HeaderMap::new();
        client.apply(&mut h, &RequestContext::default());
        assert_eq!(
            get(&h, "x-tenant").as_deref(),
            Some("none"),
            "default_value"
        );
        assert_eq!(get(&h, "x-subject"), None, "no attribute, no default");
    }
}

//! The `oidc` extension's server side: a JWT in the `attribute` header
//! (`<scheme> <token>`) is checked against its OpenID Connect provider,
//! as the Collector's `oidcauthextension` (go-oidc) does: the signature
//! with the issuer's keys (RS/PS 256/384/512, ES256/384, EdDSA, with
//! `ring`), `iss`, `aud`, `exp` (no leeway) and `nbf` (5 minutes of
//! leeway). The keys come from the issuer's discovery document
//! (`/.well-known/openid-configuration`) and its `jwks_uri`, or from a
//! `public_keys_file`; they are loaded by a task started with the
//! pipelines (tried again until they load, then refreshed every
//! [`REFRESH_INTERVAL`]) and fetched again when a token names a key not
//! held (rotation), at most once per [`REFETCH_MIN_INTERVAL`]. Until
//! a provider's keys first load, its tokens are answered "unavailable"
//! (retryable) rather than refused.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use ring::signature;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tern_config::Target;
use tern_config::components::{OidcConfig, OidcProvider};

use crate::auth::{AuthData, AuthError, AuthSetupError, AuthValue};
use crate::build::{Shutdown, Starter};

/// Least time between two fetches of a provider's keys caused by tokens
/// naming keys it does not hold.
pub const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(10);
/// How often the keys are fetched again anyway (a removed key stops
/// being accepted).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Limit on one fetch (connect, TLS, answer), as the Collector's client.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document or key set read.
const MAX_DOCUMENT: usize = 1 << 20;
/// How far in the future `nbf` may be (go-oidc's leeway).
const NBF_LEEWAY: u64 = 300;

/// A signature algorithm of JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    fn parse(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "EdDSA" => Alg::EdDsa,
            _ => return None,
        })
    }

    /// Every algorithm (what a key file allows, by key type).
    const ALL: [Alg; 9] = [
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
        Alg::Es256,
        Alg::Es384,
        Alg::EdDsa,
    ];
}

/// One public key of a JWKS.
#[derive(Debug, Clone)]
enum Key {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed point, 0x04 || x || y.
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Jwk {
    kid: Option<String>,
    alg: Option<String>,
    key: Key,
}

impl Jwk {
    /// Whether `signature` over `message` is this key's with `alg`.
    fn verifies(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        use signature::*;
        let rsa = |params: &'static RsaParameters, n: &[u8], e: &[u8]| {
            RsaPublicKeyComponents { n, e }
                .verify(params, message, sig)
                .is_ok()
        };
        match (&self.key, alg) {
            (Key::Rsa { n, e }, Alg::Rs256) => rsa(&RSA_PKCS1_2048_8192_SHA256, n, e),
            (Key::Rsa { n, e }, Alg::Rs384) => rsa(&RSA_PKCS1_2048_8192_SHA384, n, e),
            (Key::Rsa { n, e }, Alg::Rs512) => rsa(&RSA_PKCS1_2048_8192_SHA512, n, e),
            (Key::Rsa { n, e }, Alg::Ps256) => rsa(&RSA_PSS_2048_8192_SHA256, n, e),
            (Key::Rsa { n, e }, Alg::Ps384) => rsa(&RSA_PSS_2048_8192_SHA384, n, e),
            (Key::Rsa { n, e }, Alg::Ps512) => rsa(&RSA_PSS_2048_8192_SHA512, n, e),
            (Key::P256(p), Alg::Es256) => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, p)
                .verify(message, sig)
                .is_ok(),
            (Key::P384(p), Alg::Es384) => UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, p)
                .verify(message, sig)
                .is_ok(),
            (Key::Ed25519(p), Alg::EdDsa) => UnparsedPublicKey::new(&ED25519, p)
                .verify(message, sig)
                .is_ok(),
            _ => false,
        }
    }
}

/// A provider's keys and the algorithms it signs with.
#[derive(Debug)]
struct KeySet {
    keys: Vec<Jwk>,
    algs: Vec<Alg>,
}

/// Reads a JWKS document; keys of unknown types (or `use` other than
/// `sig`) are left out.
fn parse_jwks(text: &[u8]) -> Result<Vec<Jwk>, String> {
    let doc: Value = serde_json::from_slice(text).map_err(|e| format!("invalid JWKS: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("invalid JWKS: no `keys` array")?;
    let field = |k: &Value, name: &str| -> Option<Vec<u8>> {
        B64URL.decode(k.get(name)?.as_str()?.as_bytes()).ok()
    };
    let mut out = Vec::new();
    for k in keys {
        if k.get("use")
            .and_then(Value::as_str)
            .is_some_and(|u| u != "sig")
        {
            continue;
        }
        let text = |name: &str| k.get(name).and_then(Value::as_str);
        let point = |len: usize| -> Option<Vec<u8>> {
            let (x, y) = (field(k, "x")?, field(k, "y")?);
            (x.len() == len && y.len() == len).then(|| [&[4u8][..], &x, &y].concat())
        };
        let key = match (text("kty"), text("crv")) {
            (Some("RSA"), _) => field(k, "n")
                .zip(field(k, "e"))
                .map(|(n, e)| Key::Rsa { n, e }),
            (Some("EC"), Some("P-256")) => point(32).map(Key::P256),
            (Some("EC"), Some("P-384")) => point(48).map(Key::P384),
            (Some("OKP"), Some("Ed25519")) => field(k, "x").map(Key::Ed25519),
            _ => None,
        };
        if let Some(key) = key {
            out.push(Jwk {
                kid: text("kid").map(str::to_string),
                alg: text("alg").map(str::to_string),
                key,
            });
        }
    }
    Ok(out)
}

/// An HTTP(S) GET client for one issuer.
struct Fetcher {
    /// TLS to an `https` issuer: the one CA of `issuer_ca_path`, else the
    /// system's.
    tls: Option<tokio_rustls::TlsConnector>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Fetcher {
    fn new(ca_path: &str) -> Result<Fetcher, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        let path = if ca_path.is_empty() {
            match crate::tls::system_bundle() {
                Some(p) => p,
                None => return Ok(Fetcher { tls: None }),
            }
        } else {
            ca_path
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect())
            .map_err(|e| format!("{path}: {e}"))?;
        if ca_path.is_empty() {
            roots.add_parsable_certificates(certs);
        } else {
            // As the Collector: the first certificate of the file.
            let first = certs
                .into_iter()
                .next()
                .ok_or_else(|| format!("{path}: no certificate"))?;
            roots.add(first).map_err(|e| format!("{path}: {e}"))?;
        }
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Fetcher {
            tls: Some(tokio_rustls::TlsConnector::from(Arc::new(config))),
        })
    }

    /// GETs `url` (2xx only) within [`FETCH_TIMEOUT`].
    async fn get(&self, url: &str) -> Result<Bytes, String> {
        tokio::time::timeout(FETCH_TIMEOUT, self.get_now(url))
            .await
            .map_err(|_| format!("GET {url}: no answer within {FETCH_TIMEOUT:?}"))?
            .map_err(|e| format!("GET {url}: {e}"))
    }

    async fn get_now(&self, url: &str) -> Result<Bytes, String> {
        let target = Target::parse_url(url)?;
        let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| e.to_string())?;
        let request = http::Request::get(target.path.as_str())
            .header(http::header::HOST, target.authority())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("tern/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = if target.tls {
            let tls = self
                .tls
                .as_ref()
                .ok_or("no CA certificates found; set issuer_ca_path")?;
            let name = ServerName::try_from(target.host.clone()).map_err(|e| e.to_string())?;
            let stream = tls.connect(name, tcp).await.map_err(|e| e.to_string())?;
            send(TokioIo::new(stream), request).await?
        } else {
            send(TokioIo::new(tcp), request).await?
        };
        let status = response.status();
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        Limited::new(response.into_body(), MAX_DOCUMENT)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| e.to_string())
    }
}

/// Sends `request` over a fresh HTTP/1.1 connection.
async fn send<I>(
    io: I,
    request: http::Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}

/// Where a provider's keys come from.
#[derive(Debug)]
enum Source {
    /// Discovery at the issuer, then its `jwks_uri`.
    Issuer(Fetcher),
    /// A JWKS file.
    File(PathBuf),
}

/// One provider: its settings, keys and the fetch limiter.
#[derive(Debug)]
struct Provider {
    config: OidcProvider,
    source: Source,
    keys: RwLock<Option<Arc<KeySet>>>,
    /// When keys were last fetched for a token's sake; held while fetching,
    /// so that concurrent requests wait for one fetch.
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Provider {
    fn keys(&self) -> Option<Arc<KeySet>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Fetches the keys (discovery first) and puts them in force.
    async fn load(&self) -> Result<(), String> {
        let set = match &self.source {
            Source::File(path) => {
                let text = tokio::fs::read(path)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                KeySet {
                    keys: parse_jwks(&text).map_err(|e| format!("{}: {e}", path.display()))?,
                    algs: Alg::ALL.to_vec(),
                }
            }
            Source::Issuer(fetcher) => {
                let base = self.config.issuer_url.trim_end_matches('/');
                let url = format!("{base}/.well-known/openid-configuration");
                let doc: Value = serde_json::from_slice(&fetcher.get(&url).await?)
                    .map_err(|e| format!("{url}: invalid discovery document: {e}"))?;
                let issuer = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
                if issuer != self.config.issuer_url {
                    return Err(format!(
                        "oidc: issuer did not match the issuer returned by provider, expected \"{}\" got \"{issuer}\"",
                        self.config.issuer_url
                    ));
                }
                let jwks_uri = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{url}: no jwks_uri"))?;
                let mut algs: Vec<Alg> = doc
                    .get("id_token_signing_alg_values_supported")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|a| Alg::parse(a.as_str()?))
                    .collect();
                if algs.is_empty() {
                    algs.push(Alg::Rs256);
                }
                let keys = parse_jwks(&fetcher.get(jwks_uri).await?)
                    .map_err(|e| format!("{jwks_uri}: {e}"))?;
                KeySet { keys, algs }
            }
        };
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(set));
        Ok(())
    }

    /// Fetches the keys again for a token naming a key not held, unless
    /// that was done less than [`REFETCH_MIN_INTERVAL`] ago; says whether
    /// new keys may be in force.
    async fn refetch(&self, id: &str) -> bool {
        let mut last = self.last_refetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < REFETCH_MIN_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        match self.load().await {
            Ok(()) => {
                tracing::info!(extension = id, issuer = %self.config.issuer_url, "fetched the provider's keys again: a token named a key not held");
                true
            }
            Err(e) => {
                tracing::warn!(extension = id, issuer = %self.config.issuer_url, error = %e, "cannot fetch the provider's keys; keeping the last ones");
                false
            }
        }
    }
}

/// The `oidc` server authenticator.
#[derive(Debug)]
pub struct Oidc {
    id: String,
    /// The header read.
    attribute: HeaderName,
    providers: Vec<Provider>,
}

/// A token's parts, decoded but not yet trusted.
struct Token<'a> {
    alg: Alg,
    kid: Option<String>,
    claims: serde_json::Map<String, Value>,
    signed: &'a [u8],
    signature: Vec<u8>,
}

fn decode(token: &str) -> Result<Token<'_>, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed JWT: not three parts".into());
    };
    let json = |part: &str, what: &str| -> Result<serde_json::Map<String, Value>, String> {
        let bytes = B64URL
            .decode(part)
            .map_err(|e| format!("malformed JWT {what}: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("malformed JWT {what}: {e}"))
    };
    let header = json(h, "header")?;
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg =
        Alg::parse(alg_name).ok_or_else(|| format!("unsupported algorithm \"{alg_name}\""))?;
    Ok(Token {
        alg,
        kid: header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string),
        claims: json(p, "payload")?,
        signed: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature: B64URL
            .decode(s)
            .map_err(|e| format!("malformed JWT signature: {e}"))?,
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A claim as an authentication attribute.
fn attribute_of(v: &Value) -> AuthValue {
    match v {
        Value::String(s) => AuthValue::Text(s.clone()),
        Value::Array(items) if items.iter().all(Value::is_string) => AuthValue::List(
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
        ),
        other => AuthValue::Json(other.to_string()),
    }
}

impl Oidc {
    /// The authenticator of extension `id`; a `public_keys_file` is read
    /// now, so a missing or invalid one stops the start.
    pub fn new(id: &str, config: &OidcConfig) -> Result<Oidc, AuthSetupError> {
        let attribute = HeaderName::from_bytes(config.attribute.to_ascii_lowercase().as_bytes())
            .map_err(|e| AuthSetupError::Invalid(id.to_string(), format!("attribute: {e}")))?;
        let mut providers = Vec::new();
        for p in config.all_providers() {
            let source = if p.public_keys_file.is_empty() {
                Source::Issuer(Fetcher::new(&p.issuer_ca_path).map_err(|message| {
                    AuthSetupError::File {
                        id: id.to_string(),
                        path: p.issuer_ca_path.clone(),
                        message,
                    }
                })?)
            } else {
                Source::File(PathBuf::from(&p.public_keys_file))
            };
            let provider = Provider {
                config: p,
                source,
                keys: RwLock::new(None),
                last_refetch: tokio::sync::Mutex::new(None),
            };
            if let Source::File(path) = &provider.source {
                let text = std::fs::read(path).map_err(|e| AuthSetupError::File {
                    id: id.to_string(),
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                let keys = parse_jwks(&text).map_err(|message| AuthSetupError::File {
                    id: id.to_string(),
                    path: path.display().to_string(),
                    message,
                })?;
                *provider.keys.write().unwrap_or_else(|e| e.into_inner()) =
                    Some(Arc::new(KeySet {
                        keys,
                        algs: Alg::ALL.to_vec(),
                    }));
            }
            providers.push(provider);
        }
        Ok(Oidc {
            id: id.to_string(),
            attribute,
            providers,
        })
    }

    /// The task loading every provider's keys (tried again every second,
    /// up to every 30 s, until they load), then refreshing them every
    /// [`REFRESH_INTERVAL`].
    pub fn loader(self: &Arc<Self>) -> Starter {
        let oidc = self.clone();
        Box::new(move |mut shutdown: Shutdown| {
            Box::pin(async move {
                let mut wait = Duration::from_secs(1);
                loop {
                    let mut missing = false;
                    for p in &oidc.providers {
                        if let Err(e) = p.load().await {
                            missing |= p.keys().is_none();
                            tracing::warn!(extension = %oidc.id, issuer = %p.config.issuer_url, error = %e, "cannot load the OpenID provider's keys; its tokens are answered `unavailable` until they load");
                        }
                    }
                    let pause = if missing {
                        wait = (wait * 2).min(Duration::from_secs(30));
                        wait
                    } else {
                        REFRESH_INTERVAL
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        changed = shutdown.changed() => {
                            if changed.is_err() || *shutdown.borrow() {
                                return;
                            }
                        }
                    }
                }
            })
        })
    }

    /// Checks the token of a request's `attribute` header.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<AuthData, AuthError> {
        let refused = |detail: String| AuthError::Token(detail);
        let value = headers
            .get(&self.attribute)
            .ok_or_else(|| refused(format!("missing header {}", self.attribute)))?;
        let value = value
            .to_str()
            .map_err(|_| refused("invalid authorization header format".into()))?;
        let raw = match value.split(' ').collect::<Vec<_>>().as_slice() {
            [_, token] => *token,
            _ => return Err(refused("invalid authorization header format".into())),
        };
        let token = decode(raw).map_err(refused)?;
        let provider = match self.providers.as_slice() {
            [only] => only,
            many => {
                let iss = token
                    .claims
                    .get("iss")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                many.iter()
                    .find(|p| p.config.issuer_url == iss)
                    .ok_or_else(|| {
                        refused(format!(
                            "no OIDC provider configured for the issuer \"{iss}\""
                        ))
                    })?
            }
        };
        self.verify_signature(provider, &token).await?;
        check_claims(&provider.config, &token.claims, now_secs()).map_err(refused)?;
        let subject = if provider.config.username_claim.is_empty() {
            token
                .claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        } else {
            match token.claims.get(&provider.config.username_claim) {
                Some(Value::String(s)) => s.clone(),
                Some(_) => {
                    return Err(refused(format!(
                        "username claim \"{}\" isn't a regular string",
                        provider.config.username_claim
                    )));
                }
                None => {
                    return Err(refused(format!(
                        "username claim \"{}\" not found in token",
                        provider.config.username_claim
                    )));
                }
            }
        };
        let mut data = AuthData::default();
        data.set("subject", AuthValue::Text(subject));
        if !provider.config.groups_claim.is_empty() {
            let groups = match token.claims.get(&provider.config.groups_claim) {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect(),
                Some(other) => vec![other.to_string()],
                None => {
                    return Err(refused(format!(
                        "groups claim \"{}\" not found in token",
                        provider.config.groups_claim
                    )));
                }
            };
            data.set("membership", AuthValue::List(groups));
        }
        data.set("raw", AuthValue::Text(raw.to_string()));
        for (name, v) in &token.claims {
            data.set(&format!("claims.{name}"), attribute_of(v));
        }
        Ok(data)
    }

    /// Verifies the token's signature with the provider's keys, fetching
    /// them again (rate-limited) when none of those held verifies it.
    async fn verify_signature(
        &self,
        provider: &Provider,
        token: &Token<'_>,
    ) -> Result<(), AuthError> {
        let mut fetched = false;
        loop {
            let Some(set) = provider.keys() else {
                if !fetched && provider.refetch(&self.id).await {
                    fetched = true;
                    continue;
                }
                return Err(AuthError::Unavailable);
            };
            if !set.algs.contains(&token.alg) {
                return Err(AuthError::Token(format!(
                    "oidc: id token signed with unsupported algorithm, expected {:?} got {:?}",
                    set.algs, token.alg
                )));
            }
            let verified = set
                .keys
                .iter()
                .filter(|k| token.kid.is_none() || k.kid == token.kid)
                .filter(|k| {
                    k.alg
                        .as_deref()
                        .is_none_or(|a| Alg::parse(a) == Some(token.alg))
                })
                .any(|k| k.verifies(token.alg, token.signed, &token.signature));
            if verified {
                return Ok(());
            }
            if fetched || !provider.refetch(&self.id).await {
                return Err(AuthError::Token(
                    "failed to verify signature: no key held verifies it".into(),
                ));
            }
            fetched = true;
        }
    }
}

/// Checks `iss`, `aud`, `exp` and `nbf` as go-oidc does.
fn check_claims(
    p: &OidcProvider,
    claims: &serde_json::Map<String, Value>,
    now: u64,
) -> Result<(), String> {
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if !p.ignore_issuer && iss != p.issuer_url {
        return Err(format!(
            "oidc: id token issued by a different provider, expected \"{}\" got \"{iss}\"",
            p.issuer_url
        ));
    }
    if !p.ignore_audience {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == p.audience,
            Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(&p.audience)),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "oidc: expected audience \"{}\" got {}",
                p.audience,
                claims.get("aud").unwrap_or(&Value::Null)
            ));
        }
    }
    let number = |name: &str| claims.get(name).and_then(Value::as_f64);
    let exp = number("exp").unwrap_or(0.0);
    if exp < now as f64 {
        return Err(format!("oidc: token is expired (Token Expiry: {exp})"));
    }
    if let Some(nbf) = number("nbf")
        && ((now + NBF_LEEWAY) as f64) < nbf
    {
        return Err(format!(
            "oidc: current time before the nbf (not before) time: {nbf}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> OidcProvider {
        OidcProvider {
            issuer_url: "https://idp".into(),
            audience: "tern".into(),
            ..OidcProvider::default()
        }
    }

    fn claims(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn claims_are_checked_as_go_oidc_does() {
        let p = provider();
        let now = 1_000_000;
        let ok = serde_json::json!({"iss": "https://idp", "aud": ["x", "tern"], "exp": now});
        assert_eq!(check_claims(&p, &claims(ok), now), Ok(()));
        for (bad, why) in [
            (
                serde_json::json!({"iss": "https://other", "aud": "tern", "exp": now + 5}),
                "different provider",
            ),
            (
                serde_json::json!({"iss": "https://idp", "aud": "other", "exp": now + 5}),
                "audience",
            ),
            (
                serde_json::json!({"iss": "https://idp", "aud": "tern", "exp": now - 1}),
                "expired",
            ),
            (
                serde_json::json!({"iss": "https://idp", "aud": "tern"}),
                "expired",
            ),
            (
                serde_json::json!({"iss": "https://idp", "aud": "tern", "exp": now + 900, "nbf": now + 301}),
                "nbf",
            ),
        ] {
            let e = check_claims(&p, &claims(bad), now).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let nbf_in_leeway = serde_json::json!({"iss": "https://idp", "aud": "tern", "exp": now + 900, "nbf": now + 300});
        assert_eq!(check_claims(&p, &claims(nbf_in_leeway), now), Ok(()));
        let lax = OidcProvider {
            ignore_audience: true,
            ignore_issuer: true,
            ..provider()
        };
        let any = serde_json::json!({"iss": "x", "aud": "y", "exp": now});
        assert_eq!(check_claims(&lax, &claims(any), now), Ok(()));
    }

    #[test]
    fn an_es256_token_verifies_with_its_jwks_key_and_no_other() {
        use ring::rand::SystemRandom;
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = pair.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
             "x": B64URL.encode(&public[1..33]), "y": B64URL.encode(&public[33..])},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": B64URL.encode(&public[1..33]), "y": B64URL.encode(&public[33..])},
            {"kty": "oct", "kid": "secret", "k": "AAAA"},
        ]});
        let keys = parse_jwks(jwks.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1, "encryption and symmetric keys are left out");
        let header = B64URL.encode(r#"{"alg":"ES256","kid":"k1"}"#);
        let payload = B64URL.encode(r#"{"sub":"me"}"#);
        let signed = format!("{header}.{payload}");
        let sig = pair.sign(&rng, signed.as_bytes()).unwrap();
        let jwt = format!("{signed}.{}", B64URL.encode(sig.as_ref()));
        let token = decode(&jwt).unwrap();
        assert_eq!((token.alg, token.kid.as_deref()), (Alg::Es256, Some("k1")));
        assert!(keys[0].verifies(token.alg, token.signed, &token.signature));
        assert!(!keys[0].verifies(Alg::Es384, token.signed, &token.signature));
        let tampered = format!(
            "{header}.{}.{}",
            B64URL.encode(r#"{"sub":"you"}"#),
            B64URL.encode(sig.as_ref())
        );
        let t = decode(&tampered).unwrap();
        assert!(!keys[0].verifies(t.alg, t.signed, &t.signature));
        assert!(decode("a.b").is_err());
    }
}

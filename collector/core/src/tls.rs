//! TLS helpers shared by servers and clients: where the system's CA
//! certificates are (for the exporters and the `oidc` extension's fetches
//! from its provider), and the rustls protocol versions a `min_version` /
//! `max_version` pair allows.

use tern_config::components::TlsVersion;

/// Where system CA certificate bundles are looked for, in order.
pub const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The first of [`SYSTEM_BUNDLES`] that exists on this machine.
pub fn system_bundle() -> Option<&'static str> {
    SYSTEM_BUNDLES
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .copied()
}

/// TLS 1.2 only.
static TLS12_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
/// TLS 1.3 only.
static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
/// Both, newest first.
static TLS12_AND_13: [&rustls::SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];

/// The rustls protocol versions from `min` to `max` (validated: `min` is
/// not above `max`), newest first.
pub fn protocol_versions(
    min: TlsVersion,
    max: TlsVersion,
) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match (min, max) {
        (TlsVersion::V1_2, TlsVersion::V1_2) => &TLS12_ONLY,
        (TlsVersion::V1_3, _) => &TLS13_ONLY,
        (TlsVersion::V1_2, TlsVersion::V1_3) => &TLS12_AND_13,
    }
}

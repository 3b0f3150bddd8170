//! Where the system's CA certificates are, for TLS clients: the exporters
//! and the `oidc` extension's fetches from its provider.

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

"""The OpenTelemetry Python SDK sends to a Tern receiver guarded by the
`oidc` extension, with JWTs minted by PyJWT and verified against the keys
of an OpenID provider this test serves (discovery document and JWKS on
127.0.0.1). Valid tokens get through over gRPC and HTTP; a wrong audience,
an expired token, a forged signature or none at all are refused. The
provider rotates its key: a token signed with the new key is accepted
after one JWKS fetch, and tokens naming unknown keys do not make Tern
fetch again and again. A `headers_setter` on Tern's exporter forwards
what was learnt of each sender (`auth.subject`, `auth.membership`) and
its tenant header (kept with `include_metadata`) to the backend."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from test_auth import export

CONFIG = """
extensions:
  oidc:
    issuer_url: {issuer}
    audience: tern
    groups_claim: groups
  headers_setter:
    headers:
      - {{key: x-subject, from_attribute: subject}}
      - {{key: x-groups, from_attribute: membership}}
      - {{key: x-tenant, from_context: x-tenant, default_value: none}}
receivers:
  otlp:
    protocols:
      grpc:
        include_metadata: true
        auth: {{authenticator: oidc}}
      http:
        include_metadata: true
        auth: {{authenticator: oidc}}
processors:
  batch:
    timeout: 200ms
exporters:
  otlp_http:
    endpoint: http://127.0.0.1:{backend}
    encoding: json
    compression: none
    auth: {{authenticator: headers_setter}}
  debug:
    verbosity: detailed
service:
  extensions: [health_check, oidc, headers_setter]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp_http, debug]
"""


class Idp:
    """An OpenID provider: discovery and a JWKS that can be replaced."""

    def __init__(self):
        self.keys = []
        self.jwks_fetches = 0
        self.lock = threading.Lock()
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    body = {
                        "issuer": idp.issuer,
                        "jwks_uri": idp.issuer + "/jwks",
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                    }
                elif self.path == "/jwks":
                    with idp.lock:
                        idp.jwks_fetches += 1
                        body = {"keys": list(idp.keys)}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, *keys):
        with self.lock:
            self.keys = list(keys)

    def fetches(self):
        with self.lock:
            return self.jwks_fetches


class Backend:
    """Takes OTLP/HTTP JSON exports; keeps each span name with the headers
    of the request that carried it."""

    def __init__(self):
        self.spans = {}
        self.lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                seen = {k: self.headers.get(k) for k in ("x-subject", "x-groups", "x-tenant", "authorization")}
                with backend.lock:
                    for rs in body.get("resourceSpans", []):
                        for ss in rs.get("scopeSpans", []):
                            for s in ss.get("spans", []):
                                backend.spans[s["name"]] = seen
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, names, seconds=10):
        deadline = time.time() + seconds
        while time.time() < deadline:
            with self.lock:
                if names <= self.spans.keys():
                    return dict(self.spans)
            time.sleep(0.05)
        with self.lock:
            return dict(self.spans)


def rsa_key(kid):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, alg="RS256", use="sig")
    return key, jwk


def es_key(kid):
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, alg="ES256", use="sig")
    return key, jwk


def token(idp, key, kid, alg="RS256", **claims):
    now = int(time.time())
    body = {"iss": idp.issuer, "aud": "tern", "sub": "alice", "iat": now, "exp": now + 300}
    body.update(claims)
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def test_oidc_tokens_from_pyjwt_with_rotation_and_forwarded_identity(tern_factory):
    idp, backend = Idp(), Backend()
    k1, jwk1 = rsa_key("k1")
    e1, ejwk1 = es_key("e1")
    idp.publish(jwk1, ejwk1)
    tern = tern_factory(CONFIG.format(issuer=idp.issuer, backend=backend.server.server_port))
    # The keys load in the background once Tern runs.
    deadline = time.time() + 10
    while idp.fetches() == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert idp.fetches() == 1

    grpc = f"http://127.0.0.1:{tern.grpc}"
    http = f"http://127.0.0.1:{tern.http}/v1/traces"

    def send(name, tok, over="grpc", tenant=None):
        headers = {} if tok is None else {"authorization": f"Bearer {tok}"}
        if tenant:
            headers["x-tenant"] = tenant
        if over == "grpc":
            exporter = GrpcSpanExporter(endpoint=grpc, insecure=True, headers=headers)
        else:
            exporter = HttpSpanExporter(endpoint=http, headers=headers)
        try:
            return export(exporter, name)
        finally:
            exporter.shutdown()

    ok, refused = SpanExportResult.SUCCESS, SpanExportResult.FAILURE
    alice = token(idp, k1, "k1", groups=["dev", "ops"])
    bob = token(idp, e1, "e1", alg="ES256", sub="bob", groups="ops")
    assert send("alice-grpc", alice, "grpc", tenant="acme") == ok
    assert send("bob-http", bob, "http", tenant="beta") == ok
    assert send("alice-http", alice, "http") == ok

    # Rotation: the provider now signs with k2 only; one fetch finds it.
    k2, jwk2 = rsa_key("k2")
    idp.publish(jwk2)
    before = idp.fetches()
    assert send("carol-rotated", token(idp, k2, "k2", sub="carol", groups=[]), "grpc") == ok
    assert idp.fetches() == before + 1

    # Refused: nothing of these reaches the backend.
    now = int(time.time())
    forged, _ = rsa_key("k2")
    unknown, _ = rsa_key("k9")
    bad = [
        ("wrong-audience", token(idp, k2, "k2", aud="someone-else", groups=[]), "grpc"),
        ("expired", token(idp, k2, "k2", exp=now - 10, groups=[]), "http"),
        ("not-yet", token(idp, k2, "k2", nbf=now + 3600, groups=[]), "grpc"),
        ("other-issuer", token(idp, k2, "k2", iss="http://evil", groups=[]), "http"),
        ("no-groups-claim", token(idp, k2, "k2"), "grpc"),
        ("forged", token(idp, forged, "k2", groups=[]), "grpc"),
        ("unknown-kid-1", token(idp, unknown, "k9", groups=[]), "http"),
        ("unknown-kid-2", token(idp, unknown, "k9", groups=[]), "grpc"),
        ("unknown-kid-3", token(idp, unknown, "k9", groups=[]), "http"),
        ("old-key", alice, "grpc"),
        ("none", None, "http"),
        ("garbage", "not.a.jwt", "grpc"),
    ]
    fetches = idp.fetches()
    for name, tok, over in bad:
        assert send(name, tok, over) == refused, name
    # Unknown keys trigger at most one more fetch (rate-limited), not one each.
    assert idp.fetches() - fetches <= 1

    got = backend.wait_for({"alice-grpc", "bob-http", "alice-http", "carol-rotated"})
    metrics = tern.self_metrics()
    assert tern.stop() == 0
    assert set(got) == {"alice-grpc", "bob-http", "alice-http", "carol-rotated"}, got
    assert got["alice-grpc"]["x-subject"] == "alice"
    assert got["alice-grpc"]["x-groups"] == '["dev","ops"]'
    assert got["alice-grpc"]["x-tenant"] == "acme"
    assert got["bob-http"]["x-subject"] == "bob"
    assert got["bob-http"]["x-groups"] == '["ops"]'
    assert got["bob-http"]["x-tenant"] == "beta"
    assert got["alice-http"]["x-tenant"] == "none"
    assert got["carol-rotated"]["x-subject"] == "carol"
    assert all(h["authorization"] is None for h in got.values()), "the token is not forwarded"
    refusals = sum(
        int(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("tern_receiver_requests_refused_total") and 'reason="unauthenticated"' in line
    )
    assert refusals == len(bad), metrics
    # The debug exporter shows the sender's attributes.
    assert 'auth=subject=alice, membership=["dev","ops"], claims.aud=tern' in tern.logs()

"""The OpenTelemetry Python SDK sends to a Tern receiver that requires a
bearer token: with the `Authorization` header its spans are delivered,
over gRPC and HTTP; without it, or with a wrong token, the export fails
and nothing of it comes out of Tern."""

import json

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

CONFIG = """
extensions:
  bearertokenauth:
    token: sdk-token
receivers:
  otlp:
    protocols:
      grpc:
        auth:
          authenticator: bearertokenauth
      http:
        auth:
          authenticator: bearertokenauth
exporters:
  file:
    path: {dir}/out.jsonl
service:
  extensions: [health_check, bearertokenauth]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
"""


def export(exporter, name):
    """Exports one finished span named `name` with `exporter`."""
    provider = TracerProvider(resource=Resource.create({"service.name": "auth-test"}))
    # Exported here rather than by a span processor, which would hide the result.
    span = provider.get_tracer("t").start_span(name)
    span.end()
    return exporter.export([span])


def span_names(path):
    names = set()
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return names
    for line in lines:
        if not line.strip():
            continue
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                names.update(s["name"] for s in ss.get("spans", []))
    return names


def test_the_python_sdk_authenticates_with_a_bearer_token(tern_factory):
    tern = tern_factory(CONFIG)
    good = {"authorization": "Bearer sdk-token"}
    wrong = {"authorization": "Bearer guessed"}
    grpc = f"http://127.0.0.1:{tern.grpc}"
    http = f"http://127.0.0.1:{tern.http}/v1/traces"
    cases = [
        (GrpcSpanExporter(endpoint=grpc, insecure=True, headers=good), "grpc-good", SpanExportResult.SUCCESS),
        (HttpSpanExporter(endpoint=http, headers=good), "http-good", SpanExportResult.SUCCESS),
        (GrpcSpanExporter(endpoint=grpc, insecure=True, headers=wrong), "grpc-wrong", SpanExportResult.FAILURE),
        (GrpcSpanExporter(endpoint=grpc, insecure=True), "grpc-none", SpanExportResult.FAILURE),
        (HttpSpanExporter(endpoint=http, headers=wrong), "http-wrong", SpanExportResult.FAILURE),
        (HttpSpanExporter(endpoint=http), "http-none", SpanExportResult.FAILURE),
    ]
    for exporter, name, expected in cases:
        assert export(exporter, name) == expected, name
        exporter.shutdown()
    metrics = tern.self_metrics()
    assert tern.stop() == 0
    assert span_names(tern.tmp / "out.jsonl") == {"grpc-good", "http-good"}
    for transport in ("grpc", "http"):
        line = f'tern_receiver_requests_refused_total{{receiver="otlp",transport="{transport}",reason="unauthenticated"}} 2'
        assert line in metrics, metrics

"""The OpenTelemetry Python SDK talks to Tern over gRPC and HTTP; what it
sent comes out of Tern's file exporter intact (ids, names, attributes,
values), and Tern's self-metrics count it."""

import json
import logging
import urllib.request

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression as GrpcCompression
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export import SpanExportResult

CONFIG = """
processors:
  batch:
    timeout: 50ms
exporters:
  file:
    path: {dir}/out.jsonl
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [file]
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [file]
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [file]
"""

RESOURCE = Resource.create({"service.name": "research-agent", "service.version": "1.2.3"})


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def attrs(obj):
    out = {}
    for kv in obj.get("attributes", []):
        (kind, value), = kv["value"].items()
        out[kv["key"]] = int(value) if kind == "intValue" else value
    return out


def all_spans(lines):
    for line in lines:
        for rs in line.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    yield attrs(rs["resource"]), ss["scope"], span


def test_traces_metrics_and_logs_from_the_python_sdk(tern_factory):
    tern = tern_factory(CONFIG)

    # Traces over gRPC (gzip) and over HTTP protobuf.
    sent = {}
    for name, exporter in [
        ("grpc", GrpcSpanExporter(endpoint=f"http://127.0.0.1:{tern.grpc}", insecure=True, compression=GrpcCompression.Gzip)),
        ("http", HttpSpanExporter(endpoint=f"http://127.0.0.1:{tern.http}/v1/traces", compression=HttpCompression.Gzip)),
    ]:
        provider = TracerProvider(resource=RESOURCE)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("agent.loop", "0.1.0")
        with tracer.start_as_current_span(f"invoke_agent {name}") as parent:
            parent.set_attribute("gen_ai.operation.name", "invoke_agent")
            with tracer.start_as_current_span(f"chat gpt-4o {name}") as child:
                child.set_attribute("gen_ai.system", "openai")
                child.set_attribute("gen_ai.usage.input_tokens", 1234)
                child.set_attribute("gen_ai.usage.output_tokens", 56)
                sent[child.name] = (child.get_span_context().trace_id, child.get_span_context().span_id)
            sent[parent.name] = (parent.get_span_context().trace_id, parent.get_span_context().span_id)
        provider.shutdown()

    # The exporters report success for each export (checked directly too).
    probe = GrpcSpanExporter(endpoint=f"http://127.0.0.1:{tern.grpc}", insecure=True)
    assert probe.export([]) == SpanExportResult.SUCCESS

    # Metrics over gRPC: counter, up-down counter, histogram.
    reader = PeriodicExportingMetricReader(
        GrpcMetricExporter(endpoint=f"http://127.0.0.1:{tern.grpc}", insecure=True),
        export_interval_millis=60_000,
    )
    meters = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = meters.get_meter("agent.metrics")
    tokens = meter.create_counter("gen_ai.client.token.usage.total", unit="{token}")
    inflight = meter.create_up_down_counter("agent.inflight", unit="{request}")
    latency = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
    tokens.add(100, {"gen_ai.token.type": "input"})
    tokens.add(20, {"gen_ai.token.type": "output"})
    inflight.add(3)
    inflight.add(-1)
    for v in (0.1, 0.2, 0.7):
        latency.record(v, {"gen_ai.request.model": "gpt-4o"})
    meters.shutdown()

    # Logs over HTTP, correlated with a span.
    log_provider = LoggerProvider(resource=RESOURCE)
    log_provider.add_log_record_processor(
        SimpleLogRecordProcessor(HttpLogExporter(endpoint=f"http://127.0.0.1:{tern.http}/v1/logs"))
    )
    logger = logging.getLogger("tern.interop")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=log_provider))
    logger.warning("tool call failed: %s", "search")
    log_provider.shutdown()

    # A hand-written OTLP/JSON request, as curl users send it.
    body = json.dumps({
        "resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "from json"}, "severityNumber": 9}]}]}]
    }).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{tern.http}/v1/logs", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200
        assert json.loads(r.read()) == {}

    metrics_text = tern.self_metrics()
    assert 'otelcol_receiver_accepted_spans_total{receiver="otlp",transport="grpc"} 2' in metrics_text
    assert 'otelcol_receiver_accepted_spans_total{receiver="otlp",transport="http"} 2' in metrics_text
    assert 'otelcol_receiver_accepted_log_records_total{receiver="otlp",transport="http"} 2' in metrics_text

    assert tern.stop() == 0, tern.logs()
    lines = read_lines(tern.tmp / "out.jsonl")

    # Every span arrived once, with its ids, attributes, resource and scope.
    got = {span["name"]: (res, scope, span) for res, scope, span in all_spans(lines)}
    assert sorted(got) == sorted(sent)
    for name, (trace_id, span_id) in sent.items():
        res, scope, span = got[name]
        assert span["traceId"] == format(trace_id, "032x")
        assert span["spanId"] == format(span_id, "016x")
        assert res["service.name"] == "research-agent"
        assert scope["name"] == "agent.loop"
        if name.startswith("chat"):
            a = attrs(span)
            assert a["gen_ai.usage.input_tokens"] == 1234
            assert a["gen_ai.usage.output_tokens"] == 56
            assert a["gen_ai.system"] == "openai"
            parent = got[name.replace("chat gpt-4o", "invoke_agent")][2]
            assert span["parentSpanId"] == parent["spanId"]

    # Metrics: values as the SDK computed them.
    metrics = {}
    for line in lines:
        for rm in line.get("resourceMetrics", []):
            assert attrs(rm["resource"])["service.name"] == "research-agent"
            for sm in rm["scopeMetrics"]:
                for m in sm["metrics"]:
                    metrics[m["name"]] = m
    counter = metrics["gen_ai.client.token.usage.total"]
    assert counter["unit"] == "{token}"
    assert counter["sum"]["isMonotonic"] is True
    points = {attrs(p)["gen_ai.token.type"]: int(p["asInt"]) for p in counter["sum"]["dataPoints"]}
    assert points == {"input": 100, "output": 20}
    updown = metrics["agent.inflight"]
    assert updown["sum"].get("isMonotonic", False) is False
    assert int(updown["sum"]["dataPoints"][0]["asInt"]) == 2
    hist = metrics["gen_ai.client.operation.duration"]["histogram"]["dataPoints"][0]
    assert int(hist["count"]) == 3
    assert abs(hist["sum"] - 1.0) < 1e-9

    # Logs: body, severity, resource.
    records = [
        (attrs(rl.get("resource", {})), r)
        for line in lines
        for rl in line.get("resourceLogs", [])
        for sl in rl["scopeLogs"]
        for r in sl["logRecords"]
    ]
    bodies = {r["body"]["stringValue"]: (res, r) for res, r in records}
    assert set(bodies) == {"tool call failed: search", "from json"}
    res, rec = bodies["tool call failed: search"]
    assert res["service.name"] == "research-agent"
    assert rec["severityNumber"] == 13
    assert rec["severityText"] in ("WARN", "WARNING")

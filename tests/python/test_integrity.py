"""What Tern accepts, the Python protobuf parser (upb, the one the
OpenTelemetry Python SDK and many backends use) accepts too: realistic
requests of every signal, mutated at random, are posted to Tern; each one
answered 200 must reach the `file` exporter (protobuf records) and parse
there with the same number of items, and each other one must get a 400.
Bounded: a fixed seed, a few hundred requests."""

import random
import struct
import urllib.error
import urllib.request

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue

CONFIG = """
exporters:
  file/traces:
    path: {dir}/traces.pb
    format: proto
  file/metrics:
    path: {dir}/metrics.pb
    format: proto
  file/logs:
    path: {dir}/logs.pb
    format: proto
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file/traces]
    metrics:
      receivers: [otlp]
      exporters: [file/metrics]
    logs:
      receivers: [otlp]
      exporters: [file/logs]
"""


def attr(key, value):
    v = AnyValue()
    if isinstance(value, str):
        v.string_value = value
    elif isinstance(value, int):
        v.int_value = value
    else:
        v.array_value.CopyFrom(ArrayValue(values=[attr("x", e).value for e in value]))
    return KeyValue(key=key, value=v)


def traces():
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    scope.scope.name = "openai"
    for i in range(4):
        s = scope.spans.add()
        s.trace_id = bytes([i + 1]) * 16
        s.span_id = bytes([i + 2]) * 8
        s.name = f"chat gpt-4o {i}"
        s.start_time_unix_nano, s.end_time_unix_nano = 1, 2
        s.attributes.extend([attr("gen_ai.system", "openai"), attr("tokens", 42), attr("tags", ["a", 1])])
        s.events.add().name = "prompt"
        s.status.message = "ok"
    return req


def metrics():
    req = ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    g = sm.metrics.add()
    g.name = "queue.depth"
    for i in range(3):
        p = g.gauge.data_points.add()
        p.as_int = i
        p.attributes.append(attr("i", str(i)))
    h = sm.metrics.add()
    h.name = "latency"
    p = h.histogram.data_points.add()
    p.count, p.sum = 3, 4.5
    p.bucket_counts.extend([1, 2])
    p.explicit_bounds.append(1.0)
    return req


def logs():
    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    for i in range(3):
        r = sl.log_records.add()
        r.body.string_value = f"hello {i}"
        r.severity_text = "INFO"
        r.trace_id = b"\x01" * 16
    return req


def items(signal, req):
    if signal == "traces":
        return sum(len(s.spans) for r in req.resource_spans for s in r.scope_spans)
    if signal == "logs":
        return sum(len(s.log_records) for r in req.resource_logs for s in r.scope_logs)
    total = 0
    for r in req.resource_metrics:
        for s in r.scope_metrics:
            for m in s.metrics:
                kind = m.WhichOneof("data")
                total += len(getattr(m, kind).data_points) if kind else 0
    return total


SIGNALS = {
    "traces": (traces, ExportTraceServiceRequest),
    "metrics": (metrics, ExportMetricsServiceRequest),
    "logs": (logs, ExportLogsServiceRequest),
}


def mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(b))
        choice = rng.randrange(3)
        if choice == 0:
            b[i] = rng.randrange(256)
        elif choice == 1:
            b.insert(i, rng.randrange(256))
        else:
            del b[i]
    return bytes(b)


def post(port, signal, body):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/{signal}",
        data=body,
        headers={"Content-Type": "application/x-protobuf"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def records(path):
    data = path.read_bytes() if path.exists() else b""
    pos = 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        yield data[pos + 4 : pos + 4 + n]
        pos += 4 + n


def test_what_tern_accepts_the_python_parser_accepts(tern_factory, tmp_path):
    tern = tern_factory(CONFIG)
    rng = random.Random(20261204)
    accepted = {name: 0 for name in SIGNALS}
    refused = 0
    for round in range(150):
        for name, (build, _) in SIGNALS.items():
            body = build().SerializeToString()
            if round:
                body = mutate(rng, body)
            status = post(tern.http, name, body)
            assert status in (200, 400), status
            if status == 200:
                cls = SIGNALS[name][1]
                try:
                    accepted[name] += items(name, cls.FromString(body))
                except DecodeError as e:
                    raise AssertionError(f"Tern accepted a {name} request upb refuses: {body!r}") from e
            else:
                refused += 1
    assert tern.stop() == 0
    for name, (_, cls) in SIGNALS.items():
        written = 0
        for record in records(tmp_path / f"{name}.pb"):
            written += items(name, cls.FromString(record))  # raises if upb refuses
        assert written == accepted[name], name
        assert accepted[name] > 0, name
    assert refused > 50

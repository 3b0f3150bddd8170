"""Metrics sent by the OpenTelemetry Python SDK reach a real Prometheus
server through Tern, scraped from the `prometheus` exporter and pushed by
the `prometheusremotewrite` exporter, with the names, units, labels and
values the OpenTelemetry specification prescribes. `promtool check
metrics` finds nothing to say about Tern's output."""

import shutil
import subprocess
import time
import urllib.request

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from conftest import free_port
from prom import Prometheus, value

RESOURCE = Resource.create(
    {
        "service.name": "research-agent",
        "service.namespace": "agents",
        "service.instance.id": "pod-7",
        "service.version": "1.2.3",
        "deployment.environment": "test",
    }
)


def histogram_quantile(q, buckets):
    """Prometheus' histogram_quantile over cumulative (le, count) pairs."""
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return prev_le


def sdk(endpoint, temporality=None, views=()):
    exporter = OTLPMetricExporter(
        endpoint=endpoint,
        insecure=True,
        preferred_temporality=temporality or {},
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    return MeterProvider(resource=RESOURCE, metric_readers=[reader], views=list(views)), reader


SCRAPE_CONFIG = """
exporters:
  prometheus:
    endpoint: 127.0.0.1:PROM_PORT
    const_labels:
      region: eu
service:
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [prometheus]
"""


def test_scraped_by_a_real_prometheus(tern_factory, tmp_path):
    prom_port = free_port()
    tern = tern_factory(SCRAPE_CONFIG.replace("PROM_PORT", str(prom_port)))
    prometheus = Prometheus(tmp_path, scrape_target=f"127.0.0.1:{prom_port}")
    try:
        endpoint = f"http://127.0.0.1:{tern.grpc}"
        provider, reader = sdk(endpoint)
        # Delta temporality for one counter: Tern accumulates it.
        delta_provider, delta_reader = sdk(endpoint, {Counter: AggregationTemporality.DELTA})
        meter = provider.get_meter("agent.metrics", "0.1.0")
        tokens = meter.create_counter("gen_ai.client.token.usage", unit="{token}", description="Tokens used.")
        inflight = meter.create_up_down_counter("agent.inflight", unit="{request}", description="Requests in flight.")
        latency = meter.create_histogram("gen_ai.client.operation.duration", unit="s", description="Operation duration.")
        meter.create_observable_gauge(
            "agent.queue.utilization", unit="1", description="Queue fill ratio.",
            callbacks=[lambda _options: [Observation(0.25, {"queue": "tools"})]],
        )
        tool_calls = delta_provider.get_meter("agent.tools").create_counter(
            "agent.tool.calls", description="Tool calls."
        )
        tracer = TracerProvider(resource=RESOURCE).get_tracer("agent")

        tokens.add(5, {"gen_ai.token.type": "input"})
        inflight.add(3)
        inflight.add(-1)
        with tracer.start_as_current_span("chat") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            for v in (1, 2, 3, 7, 8, 12):
                latency.record(v, {"gen_ai.request.model": "gpt-4o"})
        tool_calls.add(2, {"tool": "search"})
        reader.force_flush()
        delta_reader.force_flush()

        job = 'job="agents/research-agent"'
        name = "gen_ai_client_token_usage_total"
        prometheus.wait_for(f"{name}{{{job}}}", lambda r: len(r) == 1 and float(r[0]["value"][1]) == 5)
        time.sleep(2.5)  # a few more scrapes at 5
        tokens.add(10, {"gen_ai.token.type": "input"})
        tool_calls.add(3, {"tool": "search"})
        reader.force_flush()
        delta_reader.force_flush()

        counter = prometheus.wait_for(f"{name}{{{job}}}", lambda r: len(r) == 1 and float(r[0]["value"][1]) == 15)
        labels = counter[0]["metric"]
        assert labels["instance"] == "pod-7"
        assert labels["gen_ai_token_type"] == "input"
        assert labels["otel_scope_name"] == "agent.metrics"
        assert labels["otel_scope_version"] == "0.1.0"
        assert labels["region"] == "eu"
        assert "service_version" not in labels, "resource attributes go to target_info"

        # rate() over the counter: the increase of 10 shows, and Prometheus'
        # extrapolation stays within the series' own span.
        raw = prometheus.query(f"{name}{{{job}}}[1m]")[0]["values"]
        first_t, first_v = raw[0][0], float(raw[0][1])
        last_t, last_v = raw[-1][0], float(raw[-1][1])
        assert (first_v, last_v) == (5, 15)
        rate = value(prometheus.query(f"rate({name}{{{job}}}[1m])"))
        assert 10 / 60 <= rate <= 2 * 10 / (last_t - first_t), (rate, raw)

        # Delta counter accumulated into a cumulative series.
        prometheus.wait_for('agent_tool_calls_total{tool="search"}', lambda r: len(r) == 1 and float(r[0]["value"][1]) == 5)
        assert value(prometheus.query(f"agent_inflight{{{job}}}")) == 2
        assert value(prometheus.query('agent_queue_utilization_ratio{queue="tools"}')) == 0.25

        # Histogram: buckets, sum, count, and histogram_quantile as Prometheus computes it.
        hist = "gen_ai_client_operation_duration_seconds"
        assert value(prometheus.query(f"{hist}_count{{{job}}}")) == 6
        assert value(prometheus.query(f"{hist}_sum{{{job}}}")) == 33
        bucket_rows = prometheus.query(f"{hist}_bucket{{{job}}}")
        buckets = sorted((float(r["metric"]["le"]), float(r["value"][1])) for r in bucket_rows)
        assert dict(buckets)[5.0] == 3 and dict(buckets)[10.0] == 5 and dict(buckets)[25.0] == 6
        for q in (0.5, 0.75, 0.9):
            got = value(prometheus.query(f"histogram_quantile({q}, {hist}_bucket{{{job}}})"))
            assert abs(got - histogram_quantile(q, buckets)) < 1e-9, (q, got)
        assert abs(value(prometheus.query(f"histogram_quantile(0.75, {hist}_bucket{{{job}}})")) - 8.75) < 1e-9

        # target_info carries the other resource attributes.
        info = prometheus.query(f"target_info{{{job}}}")
        assert info[0]["metric"]["service_version"] == "1.2.3"
        assert info[0]["metric"]["deployment_environment"] == "test"

        # OpenMetrics with the histogram's exemplar, gzip when asked.
        req = urllib.request.Request(
            f"http://127.0.0.1:{prom_port}/metrics",
            headers={"Accept": "application/openmetrics-text;version=1.0.0", "Accept-Encoding": "gzip"},
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.headers["Content-Encoding"] == "gzip"
            import gzip
            om = gzip.decompress(r.read()).decode()
        assert om.endswith("# EOF\n")
        assert f'trace_id="{trace_id}"' in om, om

        # promtool finds nothing to say about Tern's exposition (exporter and self-metrics).
        promtool = shutil.which("promtool")
        for port in (prom_port, tern.metrics):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read()
            check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
            assert check.returncode == 0 and check.stdout == b"" and check.stderr == b"", (port, check)
        provider.shutdown()
        delta_provider.shutdown()
    finally:
        prometheus.stop()
    assert tern.stop() == 0


REMOTE_WRITE_CONFIG = """
exporters:
  prometheusremotewrite:
    endpoint: RW_URL
    external_labels:
      cluster: test-cluster
    metric_expiration: 3s
    retry_on_failure:
      initial_interval: 100ms
service:
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [prometheusremotewrite]
"""


def test_remote_write_into_a_real_prometheus(tern_factory, tmp_path):
    prometheus = Prometheus(tmp_path, remote_write=True)
    tern = tern_factory(REMOTE_WRITE_CONFIG.replace("RW_URL", prometheus.remote_write_url))
    try:
        views = [View(instrument_name="agent.step.latency", aggregation=ExponentialBucketHistogramAggregation())]
        provider, reader = sdk(f"http://127.0.0.1:{tern.grpc}", views=views)
        meter = provider.get_meter("agent.metrics")
        tokens = meter.create_counter("gen_ai.client.token.usage", unit="{token}", description="Tokens used.")
        latency = meter.create_histogram("gen_ai.client.operation.duration", unit="s", description="Duration.")
        steps = meter.create_histogram("agent.step.latency", unit="ms", description="Step latency.")
        meter.create_observable_gauge(
            "agent.memory.usage", unit="By", description="Memory.",
            callbacks=[lambda _o: [Observation(1024, {})]],
        )
        tokens.add(7, {"gen_ai.token.type": "output"})
        for v in (1, 2, 3, 7, 8, 12):
            latency.record(v)
        for v in (3, 5, 9, 100):
            steps.record(v)
        reader.force_flush()

        labels = '{job="agents/research-agent",cluster="test-cluster"}'
        prometheus.wait_for(f"gen_ai_client_token_usage_total{labels}", lambda r: len(r) == 1 and float(r[0]["value"][1]) == 7)
        assert value(prometheus.query(f"agent_memory_usage_bytes{labels}")) == 1024
        hist = "gen_ai_client_operation_duration_seconds"
        assert value(prometheus.query(f"{hist}_count{labels}")) == 6
        assert abs(value(prometheus.query(f"histogram_quantile(0.75, {hist}_bucket{labels})")) - 8.75) < 1e-9
        # The exponential histogram arrives as a native histogram.
        prometheus.wait_for(f"histogram_count(agent_step_latency_milliseconds{labels})", lambda r: len(r) == 1 and float(r[0]["value"][1]) == 4)
        assert value(prometheus.query(f"histogram_sum(agent_step_latency_milliseconds{labels})")) == 117
        median = value(prometheus.query(f"histogram_quantile(0.5, agent_step_latency_milliseconds{labels})"))
        assert 5 <= median <= 9.5, median
        info = prometheus.query('target_info{cluster="test-cluster"}')
        assert info[0]["metric"]["service_version"] == "1.2.3"

        # Nothing more is sent: after metric_expiration the series get
        # staleness markers and vanish from instant queries.
        provider.shutdown()
        prometheus.wait_for(f"agent_memory_usage_bytes{labels}", lambda r: r == [], timeout=30)
        prometheus.wait_for(f"gen_ai_client_token_usage_total{labels}", lambda r: r == [], timeout=30)
    finally:
        prometheus.stop()
    assert tern.stop() == 0


ODD_CONFIG = """
exporters:
  prometheus:
    endpoint: 127.0.0.1:PROM_PORT
service:
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [prometheus]
"""


def test_odd_names_and_nested_values_keep_the_scrape_whole(tern_factory, tmp_path):
    """A metric name outside Prometheus' classic set once made the real
    Prometheus refuse the whole scrape (`up` 0, every series gone), and a
    deeply nested array attribute made a label that doubled per level (28
    levels here, the most the receiver takes on a data point). The SDK
    refuses such names and values, so the request is built by hand."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    prom_port = free_port()
    tern = tern_factory(ODD_CONFIG.replace("PROM_PORT", str(prom_port)))
    prometheus = Prometheus(tmp_path, scrape_target=f"127.0.0.1:{prom_port}")
    try:
        deep = AnyValue(string_value="x")
        for _ in range(28):
            nested = AnyValue()
            nested.array_value.values.append(deep)
            deep = nested
        kvlist = AnyValue()
        kvlist.kvlist_value.values.extend(
            [KeyValue(key="b", value=AnyValue(int_value=2)), KeyValue(key="a", value=AnyValue(string_value="é\"<"))]
        )
        req = ExportMetricsServiceRequest()
        scope = req.resource_metrics.add().scope_metrics.add()
        now = time.time_ns()
        for name, attrs in (
            ("ok.gauge", [KeyValue(key="deep", value=deep), KeyValue(key="map", value=kvlist)]),
            ("größe.temperature", []),
            ("日本", []),
        ):
            metric = scope.metrics.add(name=name)
            point = metric.gauge.data_points.add(time_unix_nano=now, as_double=1.5)
            point.attributes.extend(attrs)
        post = urllib.request.Request(
            f"http://127.0.0.1:{tern.http}/v1/metrics",
            data=req.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        with urllib.request.urlopen(post, timeout=5) as r:
            assert r.status == 200

        rows = prometheus.wait_for("ok_gauge", lambda r: len(r) == 1)
        labels = rows[0]["metric"]
        assert labels["deep"] == "[" * 28 + '"x"' + "]" * 28
        assert labels["map"] == '{"a":"é\\"<","b":2}'
        assert value(prometheus.query("gr_e_temperature")) == 1.5
        assert value(prometheus.query('up{job="tern"}')) == 1
        dropped = (
            'tern_exporter_prometheus_dropped_points_total{exporter="prometheus",metric="日本",reason="invalid_name"} 1'
        )
        assert dropped in tern.self_metrics()
    finally:
        prometheus.stop()
    assert tern.stop() == 0


UTF8_CONFIG = """
exporters:
  prometheus:
    endpoint: 127.0.0.1:PROM_PORT
    translation_strategy: NoUTF8EscapingWithSuffixes
service:
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [prometheus]
"""


def test_utf8_names_reach_a_prometheus_without_utf8_escaped(tern_factory, tmp_path):
    """With `NoUTF8EscapingWithSuffixes` Tern keeps OTel names in UTF-8 and
    serves them so to scrapers that ask with `escaping=allow-utf-8`
    (Prometheus 3). The Prometheus here asks without it (2.x), so it gets
    the names escaped with underscores, as from the Collector, and stores
    them."""
    prom_port = free_port()
    tern = tern_factory(UTF8_CONFIG.replace("PROM_PORT", str(prom_port)))
    prometheus = Prometheus(tmp_path, scrape_target=f"127.0.0.1:{prom_port}")
    try:
        provider, reader = sdk(f"http://127.0.0.1:{tern.grpc}")
        meter = provider.get_meter("shop")
        meter.create_counter("http.server.requests", unit="{request}").add(3, {"http.route": "/cart"})
        meter.create_histogram("http.server.duration", unit="s").record(0.25, {"http.route": "/cart"})
        reader.collect()

        rows = prometheus.wait_for('http_server_requests_total{http_route="/cart"}', lambda r: len(r) == 1)
        assert value(rows) == 3
        count = prometheus.query('http_server_duration_seconds_count{http_route="/cart"}')
        assert value(count) == 1
        assert value(prometheus.query('up{job="tern"}')) == 1
        provider.shutdown()
    finally:
        prometheus.stop()
    assert tern.stop() == 0

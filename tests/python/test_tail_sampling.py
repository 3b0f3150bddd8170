"""GenAI agent traces from the OpenTelemetry Python SDK through Tern's
`tail_sampling`: a trace with a failed tool call or a slow tool call comes
out of the file exporter whole (every span, its resource), every other trace
is absent, and the Collector-named counters say the same."""

import json
import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

CONFIG = """
processors:
  tail_sampling:
    decision_wait: 1s
    policies:
      - name: errors
        type: status_code
        status_code: {status_codes: [ERROR]}
      - name: slow_tools
        type: latency
        latency: {threshold_ms: 300}
exporters:
  file:
    path: {dir}/out.jsonl
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [file]
"""

AGENT_RUNS = 30


def metric(text, name, labels):
    for line in text.splitlines():
        if line.startswith(name + "{") and all(l in line for l in labels):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_failed_and_slow_tool_calls_keep_whole_agent_traces(tern_factory):
    tern = tern_factory(CONFIG)
    provider = TracerProvider(resource=Resource.create({"service.name": "research-agent"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"http://127.0.0.1:{tern.grpc}", insecure=True),
            max_export_batch_size=7,
            schedule_delay_millis=20,
        )
    )
    tracer = provider.get_tracer("agent")
    want = {}
    for run in range(AGENT_RUNS):
        failed, slow = run % 4 == 1, run % 5 == 2
        with tracer.start_as_current_span("invoke_agent research-agent") as root:
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            root.set_attribute("run", run)
            with tracer.start_as_current_span("chat gpt-4o") as chat:
                chat.set_attribute("gen_ai.operation.name", "chat")
                chat.set_attribute("gen_ai.usage.input_tokens", 120 + run)
            with tracer.start_as_current_span("execute_tool web_search") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.name", "web_search")
                if slow:
                    time.sleep(0.35)
                if failed:
                    tool.set_status(Status(StatusCode.ERROR, "tool timed out"))
            if failed or slow:
                want[format(root.get_span_context().trace_id, "032x")] = run
    provider.force_flush()
    provider.shutdown()

    deadline = time.time() + 30
    while True:
        text = tern.self_metrics()
        decided = sum(
            metric(text, "otelcol_processor_tail_sampling_global_count_traces_sampled_total", [f'sampled="{s}"'])
            for s in ("true", "false")
        )
        if decided >= AGENT_RUNS or time.time() > deadline:
            break
        time.sleep(0.1)
    assert decided == AGENT_RUNS, text
    assert metric(text, "otelcol_processor_tail_sampling_global_count_traces_sampled_total", ['sampled="true"']) == len(want)
    assert metric(text, "otelcol_processor_tail_sampling_count_traces_sampled_total", ['policy="errors"', 'sampled="true"']) == sum(
        1 for r in want.values() if r % 4 == 1
    )
    assert tern.stop() == 0

    kept = {}
    with open(tern.tmp / "out.jsonl") as f:
        for line in f:
            for rs in json.loads(line).get("resourceSpans", []):
                service = [a for a in rs["resource"]["attributes"] if a["key"] == "service.name"]
                assert service[0]["value"]["stringValue"] == "research-agent"
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        kept.setdefault(span["traceId"], []).append(span["name"])
    assert set(kept) == set(want), (sorted(kept), sorted(want))
    for trace_id, names in kept.items():
        assert sorted(names) == ["chat gpt-4o", "execute_tool web_search", "invoke_agent research-agent"], trace_id

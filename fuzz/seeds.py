# Writes the seed inputs of the `validate` fuzz target into corpus/validate:
# realistic requests of each signal (from the OpenTelemetry Python protobuf
# classes), random byte edits of them, and one request per hostile class the
# receiver fuzzing found. Run with a Python that has opentelemetry-proto.
import os, random
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, ArrayValue, KeyValueList
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "validate")
os.makedirs(out, exist_ok=True)
def kv(k, v):
    a = AnyValue()
    if isinstance(v, str): a.string_value = v
    elif isinstance(v, bool): a.bool_value = v
    elif isinstance(v, int): a.int_value = v
    elif isinstance(v, float): a.double_value = v
    elif isinstance(v, bytes): a.bytes_value = v
    elif isinstance(v, list): a.array_value.CopyFrom(ArrayValue(values=[kv("x", e).value for e in v]))
    elif isinstance(v, dict): a.kvlist_value.CopyFrom(KeyValueList(values=[kv(k2, e) for k2, e in v.items()]))
    return KeyValue(key=k, value=a)
seeds = {}
t = ExportTraceServiceRequest()
rs = t.resource_spans.add(); rs.resource.attributes.append(kv("service.name", "agent")); rs.schema_url = "https://opentelemetry.io/schemas/1.26.0"
ss = rs.scope_spans.add(); ss.scope.name = "openai"; ss.scope.version = "1.0"
for i in range(3):
    s = ss.spans.add(); s.trace_id = bytes([i+1])*16; s.span_id = bytes([i+2])*8; s.name = f"chat gpt-4o {i}"; s.kind = 3
    s.start_time_unix_nano = 1; s.end_time_unix_nano = 2; s.flags = 0x301
    s.attributes.extend([kv("gen_ai.system", "openai"), kv("tokens", 42), kv("ratio", 0.5), kv("ok", True), kv("raw", b"\x00\xff"), kv("héllo", "wörld")])
    ev = s.events.add(); ev.name = "gen_ai.content.prompt"; ev.time_unix_nano = 3; ev.attributes.append(kv("prompt", "hi"*100))
    ln = s.links.add(); ln.trace_id = b"\x07"*16; ln.span_id = b"\x08"*8; ln.trace_state = "k=v"
    s.status.code = 2; s.status.message = "boom"
s = ss.spans.add(); s.attributes.append(kv("nested", [1, "a", [2.5, {"k": [True]}]]))
seeds["traces_genai"] = b"\x00" + t.SerializeToString()
m = ExportMetricsServiceRequest()
sm = m.resource_metrics.add().scope_metrics.add()
g = sm.metrics.add(); g.name = "gauge"; g.unit = "1"; p = g.gauge.data_points.add(); p.as_double = 1.5; p.time_unix_nano = 5
e = p.exemplars.add(); e.trace_id = b"\x01"*16; e.span_id = b"\x02"*8; e.as_int = 3; e.filtered_attributes.append(kv("a", "b"))
su = sm.metrics.add(); su.name = "sum"; su.sum.is_monotonic = True; su.sum.aggregation_temporality = 2; su.sum.data_points.add().as_int = 7
h = sm.metrics.add(); h.name = "hist"; hp = h.histogram.data_points.add(); hp.count = 3; hp.sum = 4.5; hp.bucket_counts.extend([1, 2]); hp.explicit_bounds.append(1.0); hp.min = 0.1; hp.max = 9
x = sm.metrics.add(); x.name = "exp"; xp = x.exponential_histogram.data_points.add(); xp.scale = -2; xp.positive.offset = -3; xp.positive.bucket_counts.extend([1, 300, 5]); xp.zero_count = 1
sq = sm.metrics.add(); sq.name = "summary"; qp = sq.summary.data_points.add(); qp.count = 2; q = qp.quantile_values.add(); q.quantile = 0.5; q.value = 1
md = sm.metrics.add(); md.name = "meta"; md.metadata.append(kv("k", "v"))
seeds["metrics_all_kinds"] = b"\x01" + m.SerializeToString()
l = ExportLogsServiceRequest()
sl = l.resource_logs.add().scope_logs.add()
for i, body in enumerate(["hello", 12, {"k": "v"}, ["a", 1], b"\x01"]):
    r = sl.log_records.add(); r.time_unix_nano = 1; r.observed_time_unix_nano = 2; r.severity_number = 9; r.severity_text = "INFO"
    r.body.CopyFrom(kv("b", body).value); r.trace_id = b"\x01"*16; r.span_id = b"\x02"*8; r.flags = 1; r.event_name = "ev"
seeds["logs_bodies"] = b"\x02" + l.SerializeToString()
# hostile classes
base = seeds["traces_genai"]
rnd = random.Random(7)
for name, data in list(seeds.items()):
    for k in range(6):
        b = bytearray(data)
        for _ in range(rnd.randint(1, 3)):
            i = rnd.randrange(1, len(b))
            b[i] = rnd.randrange(256)
        seeds[f"{name}_mut{k}"] = bytes(b)
def ld(n, p):
    def varint(v):
        o = bytearray()
        while v >= 0x80: o.append((v & 0x7f) | 0x80); v >>= 7
        o.append(v); return bytes(o)
    return varint((n << 3) | 2) + varint(len(p)) + p
span = lambda extra: ld(1, ld(2, ld(2, ld(1, b"\x01"*16) + ld(2, b"\x02"*8) + extra)))
seeds["bad_utf8_name"] = b"\x00" + span(ld(5, b"caf\xe9"))
seeds["bad_wire_type_time"] = b"\x00" + span(bytes([7 << 3, 5]))
seeds["bad_trace_id_15"] = b"\x00" + span(ld(1, b"\x01"*15))
seeds["bad_span_id_16"] = b"\x00" + span(ld(2, b"\x01"*16))
v = ld(1, b"leaf")
for _ in range(40): v = ld(5, ld(1, v))
seeds["too_deep_array"] = b"\x00" + span(ld(9, ld(1, b"k") + ld(2, v)))
seeds["unknown_group"] = b"\x00" + span(bytes([0xa3, 0x01, 0x08, 0x01, 0xa4, 0x01]))
seeds["end_group_alone"] = b"\x00" + span(bytes([0xa4, 0x01]))
seeds["varint_overflow"] = b"\x00" + span(bytes([0x30] + [0xff]*9 + [0x02]))
seeds["packed_ragged"] = b"\x01" + ld(1, ld(2, ld(2, ld(9, ld(1, ld(6, b"\x00"*12))))))
seeds["empty"] = b"\x00"
for name, data in seeds.items():
    open(os.path.join(out, name), "wb").write(data)
print(len(seeds))

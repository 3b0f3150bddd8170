# Writes the seed inputs of the fuzz targets into corpus/<target>
# (`cargo fuzz cmin <target>` then keeps the ones that add coverage):
# - validate: realistic requests of each signal (from the OpenTelemetry
#   Python protobuf classes), random byte edits of them, and one request per
#   hostile class the receiver fuzzing found;
# - views: the same requests, plus requests whose names trigger every
#   decision of the edit plan (drop-me, keep-me, drop.scope, ...);
# - json: the requests as OTLP/JSON (hex ids), hand-written edge cases, and
#   the protobuf requests for the writing direction;
# - decompress: bodies in each encoding, under roomy and tight limits,
#   truncated, corrupt, bombs;
# - config: Tern's own configs, the compatibility configs, and configs for
#   every component added since, env references, anchors, broken YAML;
# - probabilistic_sampler, tail_sampling, loadbalancing: trace and log
#   requests with trace states, sampling attributes and routing keys.
# Run with a Python that has opentelemetry-proto; name targets to write only
# those (`python seeds.py config json`).
import base64, json, os, random, sys
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, ArrayValue, KeyValueList
corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
def write(target, seeds):
    if sys.argv[1:] and target not in sys.argv[1:]:
        return
    out = os.path.join(corpus, target)
    os.makedirs(out, exist_ok=True)
    for name, data in seeds.items():
        open(os.path.join(out, name), "wb").write(data)
    print(target, len(seeds))
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
write("validate", seeds)

# ---- views: [signal, plan seed] + request ----
views = {}
for name, data in seeds.items():
    views[name] = data[:1] + bytes([len(name) % 7]) + data[1:]
edit = ExportTraceServiceRequest()
for svc, scope in [("drop-me", "s"), ("keep-me", "s"), ("svc", "drop.scope"), ("svc", "keep.scope"), ("svc", "lib")]:
    rs = edit.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", svc), kv("k8s.pod.name", "p"), kv("service.namespace", "ns")])
    ss = rs.scope_spans.add(); ss.scope.name = scope; ss.scope.attributes.append(kv("scope.drop", 1))
    for i in range(3):
        sp = ss.spans.add(); sp.trace_id = bytes([i + 1]) * 16; sp.span_id = bytes([i]) * 8; sp.name = "op"; sp.trace_state = "a=b"
        sp.attributes.extend([kv("gen_ai.request.model", "gpt"), kv("gen_ai.system", "x"), kv("gen_ai.operation.name", "chat"), kv("http.route", "/"), kv("shard", 2)])
views["edit_traces"] = b"\x00\x01" + edit.SerializeToString()
edit = ExportMetricsServiceRequest()
for svc in ["drop-me", "keep-me", "svc"]:
    rm = edit.resource_metrics.add(); rm.resource.attributes.append(kv("service.name", svc))
    for scope in ["drop.scope", "keep.scope", "lib"]:
        sm = rm.scope_metrics.add(); sm.scope.name = scope
        for name in ["drop.metric", "kept"]:
            g = sm.metrics.add(); g.name = name
            for i in range(4):
                p = g.sum.data_points.add(); p.as_int = i; p.attributes.extend([kv("shard", "a"), kv("gen_ai.request.model", "m")])
views["edit_metrics"] = b"\x01\x02" + edit.SerializeToString()
edit = ExportLogsServiceRequest()
for svc in ["drop-me", "keep-me", "svc"]:
    rl = edit.resource_logs.add(); rl.resource.attributes.append(kv("service.name", svc))
    for scope in ["drop.scope", "keep.scope", "lib"]:
        sl = rl.scope_logs.add(); sl.scope.name = scope
        for i in range(4):
            r = sl.log_records.add(); r.time_unix_nano = i * 1000; r.body.string_value = "b"; r.attributes.append(kv("gen_ai.system", "x"))
views["edit_logs"] = b"\x02\x03" + edit.SerializeToString()
write("views", views)

# ---- json: [signal + 3 * direction] + body ----
from google.protobuf.json_format import MessageToDict
def otlp_json(msg):
    def fix(o):
        if isinstance(o, dict):
            return {k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else fix(v)) for k, v in o.items()}
        if isinstance(o, list):
            return [fix(v) for v in o]
        return o
    return json.dumps(fix(MessageToDict(msg))).encode()
js = {}
for name, cls, sel in [("traces_genai", ExportTraceServiceRequest, 0), ("metrics_all_kinds", ExportMetricsServiceRequest, 1), ("logs_bodies", ExportLogsServiceRequest, 2)]:
    msg = cls(); msg.ParseFromString(seeds[name][1:])
    js[name + ".json"] = bytes([sel]) + otlp_json(msg)
    js[name + ".pb"] = bytes([sel + 3]) + seeds[name][1:]
js["null"] = b"\x00null"
js["empty"] = b"\x01{}"
js["snake_case_enum_names"] = b'\x00{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"0102030405060708090a0b0c0d0e0f10","span_id":"0102030405060708","kind":"SPAN_KIND_SERVER","status":{"code":"STATUS_CODE_ERROR"},"start_time_unix_nano":"12","attributes":[{"key":"k","value":{"int_value":"-3"}}]}]}]}]}'
js["doubles_as_strings"] = b'\x01{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g","gauge":{"dataPoints":[{"asDouble":"NaN"},{"asDouble":"Infinity"},{"asDouble":"-Infinity"},{"asDouble":"1.5"},{"asDouble":-0.0},{"asInt":"9223372036854775807"}]}}]}]}]}'
js["repeated_keys"] = b'\x02{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"a"},"body":{"intValue":1},"severityText":"x","severityText":"y"}]}]}],"resourceLogs":[]}'
js["nested_values"] = b'\x02{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"kvlistValue":{"values":[{"key":"a","value":{"arrayValue":{"values":[{"boolValue":true},{"bytesValue":"AAE="},{"doubleValue":1e300},{}]}}}]}}}]}]}]}'
js["nulls_unknown_fields"] = b'\x00{"resourceSpans":[{"resource":null,"schemaUrl":null,"unknown":{"a":[1,{"b":null}]},"scopeSpans":[{"scope":{"name":"\\u00e9\\ud83d\\ude00"},"spans":null}]}]}'
write("json", js)

# ---- decompress: [encoding, limit low, limit high] + body ----
# Encodings by selector as in collector/src/receiver/decompress_check.rs:
# 0 gzip, 1 x-gzip, 2 deflate, 3 zlib, 4 zstd, 5 snappy (block),
# 6 snappy (framed), 7 " GZIP ", 8 identity, 9 "", 10 br.
import gzip, shutil, struct, subprocess, zlib
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
def snappy_block(data):
    # uncompressed length, then one literal (lengths under 60 fit the tag)
    assert len(data) < 60
    return bytes([len(data), (len(data) - 1) << 2]) + data
def snappy_framed(data):
    chunk = struct.pack("<I", crc32c(data)) + data
    return b"\xff\x06\x00\x00sNaPpY" + b"\x01" + struct.pack("<I", len(chunk))[:3] + chunk
def zstd(data):
    if shutil.which("zstd") is None:
        return None
    return subprocess.run(["zstd", "-q", "-c", "-1"], input=data, capture_output=True, check=True).stdout
def limit(n):
    return struct.pack("<H", n)
text = b"hello otlp " * 4
proto = seeds["traces_genai"][1:]
dec = {}
for name, data in [("text", text), ("proto", proto), ("zeros", b"\x00" * 3000)]:
    for lim_name, lim in [("roomy", 65535), ("tight", len(data) // 2)]:
        dec[f"gzip_{name}_{lim_name}"] = b"\x00" + limit(lim) + gzip.compress(data)
        dec[f"zlib_{name}_{lim_name}"] = b"\x02" + limit(lim) + zlib.compress(data)
        z = zstd(data)
        if z is not None:
            dec[f"zstd_{name}_{lim_name}"] = b"\x04" + limit(lim) + z
        dec[f"plain_{name}_{lim_name}"] = bytes([len(name) % 8]) + limit(lim) + data
dec["snappy_block"] = b"\x05" + limit(100) + snappy_block(b"hello snappy")
dec["snappy_block_too_long"] = b"\x05" + limit(4) + snappy_block(b"hello snappy")
dec["snappy_framed"] = b"\x06" + limit(100) + snappy_framed(b"hello framed")
dec["snappy_framed_bad_crc"] = b"\x06" + limit(100) + snappy_framed(b"hello framed")[:-1] + b"X"
dec["gzip_truncated"] = b"\x00" + limit(1000) + gzip.compress(text)[:-6]
dec["gzip_two_members"] = b"\x01" + limit(1000) + gzip.compress(text) + gzip.compress(text)
dec["gzip_bomb"] = b"\x07" + limit(65535) + gzip.compress(b"\x00" * 1000000)
dec["identity"] = b"\x08" + limit(0) + text
dec["empty_name"] = b"\x09" + limit(3) + text
dec["brotli"] = b"\x0a" + limit(3) + text
dec["empty"] = b"\x00" + limit(10)
write("decompress", dec)

# ---- config: YAML text ----
# Tern's configs (default, deploy examples, the reduced compatibility
# configs), configs Tern refuses (the compatibility originals), and configs
# for the components added since, env expansion, anchors and merge keys.
import glob
repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
cfg = {}
for path in [os.path.join(repo, "config/src/default.yaml"), os.path.join(repo, "deploy/docker/config.yaml"),
             os.path.join(repo, "deploy/kubernetes/agent/config.yaml"), os.path.join(repo, "deploy/kubernetes/gateway/config.yaml")] \
        + sorted(glob.glob(os.path.join(repo, "tests/compat/reduced/*.yaml")))[:12] \
        + sorted(glob.glob(os.path.join(repo, "tests/compat/original/*.yaml")))[:8]:
    cfg[os.path.relpath(path, repo).replace("/", "_")] = open(path, "rb").read()
cfg["samplers_lb.yaml"] = b"""receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:HOST}:${env:PORT}
      http:
        endpoint: "127.0.0.1:${env:EMPTY}4318"
processors:
  probabilistic_sampler:
    sampling_percentage: 12.5
    mode: proportional
    hash_seed: 7
    fail_closed: false
  probabilistic_sampler/logs:
    sampling_percentage: 50
    attribute_source: record
    from_attribute: user.id
  tail_sampling:
    decision_wait: 2s
    num_traces: 1000
    policies:
      - name: errors
        type: status_code
        status_code: {status_codes: [ERROR, UNSET]}
      - name: slow
        type: latency
        latency: {threshold_ms: 500, upper_threshold_ms: 1000}
      - name: attr
        type: string_attribute
        string_attribute: {key: http.route, values: ["/a", "/b.*"], enabled_regex_matching: true, invert_match: true}
      - name: both
        type: and
        and: {and_sub_policy: [{name: p, type: probabilistic, probabilistic: {sampling_percentage: 10}}, {name: n, type: numeric_attribute, numeric_attribute: {key: x, min_value: 1, max_value: 9}}]}
      - name: mix
        type: composite
        composite:
          max_total_spans_per_second: 100
          policy_order: [a, b]
          composite_sub_policy: [{name: a, type: always_sample}, {name: b, type: rate_limiting, rate_limiting: {spans_per_second: 5}}]
          rate_allocation: [{policy: a, percent: 50}, {policy: b, percent: 50}]
  batch: &batch
    timeout: 200ms
    send_batch_size: 100
  batch/2:
    <<: *batch
    send_batch_max_size: 200
exporters:
  loadbalancing:
    routing_key: traceID
    protocol:
      otlp:
        timeout: 1s
        tls: {insecure: true}
    resolver:
      static: {hostnames: [a:4317, b:4317]}
  load_balancing/dns:
    routing_key: service
    protocol: {otlp: {}}
    resolver:
      dns: {hostname: backends.local, port: 4317, interval: 5s}
  debug:
    verbosity: detailed
connectors:
  forward: {}
service:
  telemetry:
    logs: {level: debug, encoding: json}
    metrics: {level: detailed, readers: [{pull: {exporter: {prometheus: {host: 127.0.0.1, port: 8888}}}}]}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [probabilistic_sampler, tail_sampling, batch]
      exporters: [loadbalancing, forward]
    traces/2:
      receivers: [forward]
      exporters: [debug]
    logs:
      receivers: [otlp]
      processors: [probabilistic_sampler/logs, batch/2]
      exporters: [load_balancing/dns]
"""
cfg["errors.yaml"] = b"""receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:UNSET}
        endpoint: twice
      bogus: 1
exporters:
  otlp:
    endpoint: ${env:YAML}
    sending_queue: {queue_size: -1, sizer: lines}
    timeout: 5 parsecs
processors:
  tail_sampling:
    policies: [{name: x, type: nope}, {name: x}]
service:
  pipelines:
    traces: {receivers: [otlp, missing], exporters: []}
    nope: {}
"""
cfg["not_a_mapping.yaml"] = b"- a\n- b: [c, {d: e}]\n"
cfg["anchors.yaml"] = b"a: &x {b: &y [1, 2, *y]}\nc: *x\n<<: *x\nd: !!str 3\ne: |\n  text\nf: >-\n  folded\n"
cfg["empty.yaml"] = b""
cfg["bad_yaml.yaml"] = b"receivers: {otlp: [\n"
write("config", cfg)

# ---- probabilistic_sampler: [flags, percentage f32 LE x4, hash seed,
# precision, unused] + request; flags: bit 0 logs, bits 1-2 mode (default,
# hash_seed, proportional, equalizing), bit 3 fail_closed, bit 4 record
# attribute source, bit 5 from_attribute user.id, bit 6 priority attribute.
def sampled_traces():
    t = ExportTraceServiceRequest()
    rs = t.resource_spans.add(); rs.resource.attributes.append(kv("service.name", "svc"))
    ss = rs.scope_spans.add(); ss.scope.name = "lib"
    states = ["", "ot=th:8", "ot=th:0;rv:abcdef01234567", "ot=rv:ffffffffffffff", "ot=th:zz", "vendor=x,ot=th:c;rv:00000000000000;k:v", "ot=th:1;th:2", "a=b,c=d"]
    for i, state in enumerate(states):
        s = ss.spans.add(); s.trace_id = bytes([i * 31 % 256]) * 8 + bytes(range(8)); s.span_id = bytes([i + 1]) * 8
        s.trace_state = state; s.name = f"s{i}"; s.flags = 0x101 if i % 2 else 0
        if i % 3 == 0: s.attributes.append(kv("sampling.priority", i))
        if i % 3 == 1: s.attributes.append(kv("priority", 0.0 if i == 1 else 5.5))
    return t.SerializeToString()
def sampled_logs():
    l = ExportLogsServiceRequest()
    sl = l.resource_logs.add().scope_logs.add()
    for i in range(6):
        r = sl.log_records.add(); r.body.string_value = "x"
        if i % 2: r.trace_id = bytes([i]) * 16
        if i % 3 == 0: r.attributes.append(kv("user.id", f"u{i}" if i else 12))
        if i == 4: r.attributes.extend([kv("sampling.threshold", "8"), kv("sampling.randomness", "abcdef01234567")])
        if i == 5: r.attributes.append(kv("priority", 0))
    return l.SerializeToString()
ps = {}
for flags in [0, 2, 4, 6, 8 | 4, 64 | 2, 1, 1 | 16 | 32, 1 | 16 | 32 | 64 | 4, 1 | 6 | 8]:
    for pct in [0.0, 25.0, 100.0, 1e-9]:
        body = sampled_logs() if flags & 1 else sampled_traces()
        ps[f"f{flags}_p{pct}"] = bytes([flags]) + struct.pack("<f", pct) + bytes([flags * 7 % 256, 4, 0]) + body
write("probabilistic_sampler", ps)

# ---- tail_sampling: [policy set, cut low, cut high] + two traces requests ----
def tail_request(first, services):
    t = ExportTraceServiceRequest()
    for svc in services:
        rs = t.resource_spans.add(); rs.resource.attributes.append(kv("service.name", svc))
        ss = rs.scope_spans.add()
        for i in range(4):
            s = ss.spans.add(); s.trace_id = bytes([first + i % 2]) * 16; s.span_id = bytes([first, i, len(svc)]) + b"\x00" * 5
            s.start_time_unix_nano = 1_000_000; s.end_time_unix_nano = 1_000_000 + i * 3_000_000
            s.status.code = i % 3; s.trace_state = "ot=th:8" if i == 1 else ""
            s.attributes.extend([kv("http.route", ["/a", "/b/c", "/x", ""][i]), kv("retries", i), kv("ok", i % 2 == 0)])
    return t.SerializeToString()
ts = {}
for set_ in range(3):
    a = tail_request(1, ["svc", "drop-me"]); b = tail_request(2, ["svc"])
    ts[f"set{set_}_two"] = bytes([set_]) + struct.pack("<H", len(a)) + a + b
    a2 = tail_request(3, ["api"])
    ts[f"set{set_}_same_trace_twice"] = bytes([set_]) + struct.pack("<H", len(a2)) + a2 + a2
    ts[f"set{set_}_one"] = bytes([set_]) + struct.pack("<H", 65535) + seeds["traces_genai"][1:]
write("tail_sampling", ts)

# ---- loadbalancing: [signal and key, backends] + request; keys as in
# exporters/tests/common/fuzz.rs: 0-1 traces (traceID, service), 2-4 logs
# (traceID, service, resource), 5-8 metrics (service, resource, metric,
# streamID). ----
lb = {}
for sel in range(9):
    body = tail_request(1, ["a", "b", "c"]) if sel < 2 else (sampled_logs() if sel < 5 else seeds["metrics_all_kinds"][1:])
    for backends in [0, 2, 7]:
        lb[f"k{sel}_b{backends}"] = bytes([sel, backends]) + body
m = ExportMetricsServiceRequest()
for svc in ["a", "b", None]:
    rm = m.resource_metrics.add()
    if svc: rm.resource.attributes.append(kv("service.name", svc))
    sm = rm.scope_metrics.add(); sm.scope.name = "s"
    for name in ["x", "y"]:
        g = sm.metrics.add(); g.name = name
        for i in range(3):
            p = g.gauge.data_points.add(); p.as_int = i; p.attributes.append(kv("k", i))
for sel in range(5, 9):
    lb[f"k{sel}_streams"] = bytes([sel, 3]) + m.SerializeToString()
write("loadbalancing", lb)

# ---- storage: a segment file of a persistent queue's write-ahead log
# (records: u32 length, CRC-32 of seq + payload, u64 seq, payload), the
# payloads as tern_core::persist writes batches: version 1, signal, then
# each request with its context. Whole logs, torn ones, flipped bytes,
# bad lengths, payloads that are not batches. ----
import struct, zlib
def lenbytes(b): return struct.pack("<I", len(b)) + b
def batch_payload(signal, requests):
    out = bytes([1, signal]) + struct.pack("<I", len(requests))
    for transport, peer, meta, auth, body in requests:
        out += bytes([transport])
        out += (b"\x01" + lenbytes(peer.encode())) if peer else b"\x00"
        out += struct.pack("<I", len(meta)) + b"".join(lenbytes(k.encode()) + lenbytes(v.encode()) for k, v in meta)
        out += struct.pack("<I", len(auth))
        for name, tag, value in auth:
            out += lenbytes(name.encode()) + bytes([tag])
            if tag == 1:
                out += struct.pack("<I", len(value)) + b"".join(lenbytes(v.encode()) for v in value)
            else:
                out += lenbytes(value.encode())
        out += lenbytes(body)
    return out
def record(seq, payload):
    crc = zlib.crc32(struct.pack("<Q", seq) + payload) & 0xffffffff
    return struct.pack("<IIQ", len(payload), crc, seq) + payload
st = {}
traces_body = seeds["traces_genai"][1:]
logs_body = sampled_logs()
metrics_body = seeds["metrics_all_kinds"][1:]
payloads = [
    batch_payload(0, [(1, "10.0.0.1:4317", [("x-tenant", "acme")], [("subject", 0, "agent-7")], traces_body)]),
    batch_payload(0, [(2, None, [], [], traces_body), (1, None, [], [("membership", 1, ["a", "b"])], traces_body)]),
    batch_payload(1, [(0, None, [], [("claims.x", 2, "{\"a\":1}")], metrics_body)]),
    batch_payload(2, [(2, "[::1]:9", [("a", "b"), ("c", "d")], [], logs_body)]),
    batch_payload(0, []),
]
log = b"".join(record(i, p) for i, p in enumerate(payloads))
st["whole_log"] = log
for i, p in enumerate(payloads):
    st[f"one_record_{i}"] = record(100 + i, p)
st["torn_tail"] = log[:-7]
st["torn_header"] = log + b"\x10\x00\x00"
st["bad_length"] = log + struct.pack("<IIQ", 0xffffffff, 0, 9) + b"xx"
flipped = bytearray(log); flipped[40] ^= 0x01; st["flipped_byte"] = bytes(flipped)
st["not_a_batch"] = record(7, b"hello") + record(8, b"\x01\x07") + record(9, b"\x02\x00\x00\x00\x00\x00")
st["bad_request_inside"] = record(3, batch_payload(0, [(1, None, [], [], b"\xff\xff\xff")]))
st["unknown_transport"] = record(4, bytes([1, 0, 1, 0, 0, 0, 9]) + b"\x00" * 12)
st["empty"] = b""
st["zeros"] = b"\x00" * 64
st["seq_gaps"] = record(5, payloads[0]) + record(500, payloads[1]) + record(2, payloads[2])
st["duplicate_seq"] = record(1, payloads[0]) + record(1, payloads[0])
random.seed(7)
for i in range(6):
    b = bytearray(log)
    for _ in range(3): b[random.randrange(len(b))] = random.randrange(256)
    st[f"random_edit_{i}"] = bytes(b)
write("storage", st)

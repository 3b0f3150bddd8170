//! The OTLP export request schemas as static tables: for every message of
//! the trace, metrics and logs protocols, what each field number holds.
//! [`super::validate`] walks a request against these tables; nothing here
//! runs code. Field numbers and types follow `opentelemetry-proto` (the
//! messages prost decodes) and the OTLP `.proto` files.

/// What a field holds, as far as validating it needs to know.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Not in the schema (or reserved): skipped whatever its wire type.
    Unknown,
    /// `int32`, `int64`, `uint32`, `uint64`, `sint32`, `bool` or an enum.
    Varint,
    /// `fixed64`, `sfixed64` or `double`.
    Fixed64,
    /// `fixed32`.
    Fixed32,
    /// `string`: must be UTF-8.
    Str,
    /// `bytes`: anything.
    Bytes,
    /// A trace or span id: `bytes` of exactly this many bytes, or empty.
    Id(usize),
    /// A nested message.
    Msg(&'static Message),
    /// A nested message that is one item (span, log record, data point).
    Item(&'static Message),
    /// A `KeyValue` (attributes; the most common message by far).
    KeyValue,
    /// An `AnyValue` (attribute values, log bodies).
    AnyValue,
    /// `repeated fixed64` / `repeated double`: packed or one by one.
    PackedFixed64,
    /// `repeated uint64`: packed or one by one.
    PackedVarint,
}

/// One field of a message.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// The field's name as in the `.proto` file (for error paths).
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// True for `repeated` fields (error paths show the index).
    pub repeated: bool,
}

/// What a one-byte tag (field number and wire type) of a message holds,
/// when its wire type is the one the schema expects: the fast path's
/// dispatch, one load per field. [`Fast::Slow`] for anything else (unknown
/// fields, wrong wire types, items), which the full walk handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fast {
    /// Not on the fast path.
    Slow,
    /// A varint.
    Varint,
    /// 8 bytes.
    Fixed64,
    /// 4 bytes.
    Fixed32,
    /// A string.
    Str,
    /// Bytes.
    Bytes,
    /// An id of 8 bytes (or empty).
    Id8,
    /// An id of 16 bytes (or empty).
    Id16,
    /// A `KeyValue`.
    KeyValue,
    /// An `AnyValue`.
    AnyValue,
    /// Another message (its schema is the field's [`Kind::Msg`]).
    Nested,
}

impl Fast {
    const fn of(kind: Kind, wire_type: usize) -> Fast {
        match (kind, wire_type) {
            (Kind::Varint | Kind::PackedVarint, 0) => Fast::Varint,
            (Kind::Fixed64 | Kind::PackedFixed64, 1) => Fast::Fixed64,
            (Kind::Fixed32, 5) => Fast::Fixed32,
            (Kind::Str, 2) => Fast::Str,
            (Kind::Bytes, 2) => Fast::Bytes,
            (Kind::Id(8), 2) => Fast::Id8,
            (Kind::Id(16), 2) => Fast::Id16,
            (Kind::KeyValue, 2) => Fast::KeyValue,
            (Kind::AnyValue, 2) => Fast::AnyValue,
            (Kind::Msg(_), 2) => Fast::Nested,
            _ => Fast::Slow,
        }
    }
}

/// One message type: its fields indexed by field number (index 0 unused).
#[derive(Debug)]
pub struct Message {
    /// Field specs by number; numbers past the end are unknown.
    pub fields: &'static [FieldSpec],
    /// The fast path's dispatch, by one-byte tag.
    pub fast: [Fast; 128],
}

impl Message {
    /// A message of these fields, with its fast-path table.
    pub const fn new(fields: &'static [FieldSpec]) -> Message {
        let mut fast = [Fast::Slow; 128];
        let mut tag = 8;
        while tag < 128 {
            if tag >> 3 < fields.len() {
                fast[tag] = Fast::of(fields[tag >> 3].kind, tag & 7);
            }
            tag += 1;
        }
        Message { fields, fast }
    }

    /// The number of the field called `name` (as in the `.proto` file), for
    /// code that reads or writes fields by number ([`crate::view`]); a name
    /// not in the message fails the build where it is used in a constant.
    pub const fn number(&self, name: &str) -> u32 {
        let mut i = 1;
        while i < self.fields.len() {
            if eq(self.fields[i].name.as_bytes(), name.as_bytes()) {
                return i as u32;
            }
            i += 1;
        }
        panic!("no field of that name in the message")
    }

    /// The spec of field `number`; [`Kind::Unknown`] when not in the schema.
    #[inline]
    pub fn field(&self, number: u32) -> &FieldSpec {
        self.fields.get(number as usize).unwrap_or(&UNKNOWN)
    }
}

/// Byte-wise equality in a `const fn`.
const fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const NONE: FieldSpec = FieldSpec {
    name: "",
    kind: Kind::Unknown,
    repeated: false,
};

/// What an unknown field number is.
static UNKNOWN: FieldSpec = NONE;

const fn one(name: &'static str, kind: Kind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        repeated: false,
    }
}

const fn many(name: &'static str, kind: Kind) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        repeated: true,
    }
}

/// Trace ids are 16 bytes, span ids 8 (or empty: OTLP says "not set").
const TRACE_ID: Kind = Kind::Id(16);
const SPAN_ID: Kind = Kind::Id(8);

// opentelemetry.proto.common.v1

pub static ANY_VALUE: Message = Message::new(&[
    NONE,
    one("string_value", Kind::Str),
    one("bool_value", Kind::Varint),
    one("int_value", Kind::Varint),
    one("double_value", Kind::Fixed64),
    one("array_value", Kind::Msg(&ARRAY_VALUE)),
    one("kvlist_value", Kind::Msg(&KEY_VALUE_LIST)),
    one("bytes_value", Kind::Bytes),
    one("string_value_strindex", Kind::Varint),
]);

pub static ARRAY_VALUE: Message = Message::new(&[NONE, many("values", Kind::AnyValue)]);

pub static KEY_VALUE_LIST: Message = Message::new(&[NONE, many("values", Kind::KeyValue)]);

pub static KEY_VALUE: Message = Message::new(&[
    NONE,
    one("key", Kind::Str),
    one("value", Kind::AnyValue),
    one("key_strindex", Kind::Varint),
]);

const ATTRIBUTES: Kind = Kind::KeyValue;

pub static SCOPE: Message = Message::new(&[
    NONE,
    one("name", Kind::Str),
    one("version", Kind::Str),
    many("attributes", ATTRIBUTES),
    one("dropped_attributes_count", Kind::Varint),
]);

pub static ENTITY_REF: Message = Message::new(&[
    NONE,
    one("schema_url", Kind::Str),
    one("type", Kind::Str),
    many("id_keys", Kind::Str),
    many("description_keys", Kind::Str),
]);

// opentelemetry.proto.resource.v1

pub static RESOURCE: Message = Message::new(&[
    NONE,
    many("attributes", ATTRIBUTES),
    one("dropped_attributes_count", Kind::Varint),
    many("entity_refs", Kind::Msg(&ENTITY_REF)),
]);

// opentelemetry.proto.trace.v1

pub static TRACES_REQUEST: Message =
    Message::new(&[NONE, many("resource_spans", Kind::Msg(&RESOURCE_SPANS))]);

pub static RESOURCE_SPANS: Message = Message::new(&[
    NONE,
    one("resource", Kind::Msg(&RESOURCE)),
    many("scope_spans", Kind::Msg(&SCOPE_SPANS)),
    one("schema_url", Kind::Str),
]);

pub static SCOPE_SPANS: Message = Message::new(&[
    NONE,
    one("scope", Kind::Msg(&SCOPE)),
    many("spans", Kind::Item(&SPAN)),
    one("schema_url", Kind::Str),
]);

pub static SPAN: Message = Message::new(&[
    NONE,
    one("trace_id", TRACE_ID),
    one("span_id", SPAN_ID),
    one("trace_state", Kind::Str),
    one("parent_span_id", SPAN_ID),
    one("name", Kind::Str),
    one("kind", Kind::Varint),
    one("start_time_unix_nano", Kind::Fixed64),
    one("end_time_unix_nano", Kind::Fixed64),
    many("attributes", ATTRIBUTES),
    one("dropped_attributes_count", Kind::Varint),
    many("events", Kind::Msg(&EVENT)),
    one("dropped_events_count", Kind::Varint),
    many("links", Kind::Msg(&LINK)),
    one("dropped_links_count", Kind::Varint),
    one("status", Kind::Msg(&STATUS)),
    one("flags", Kind::Fixed32),
]);

pub static EVENT: Message = Message::new(&[
    NONE,
    one("time_unix_nano", Kind::Fixed64),
    one("name", Kind::Str),
    many("attributes", ATTRIBUTES),
    one("dropped_attributes_count", Kind::Varint),
]);

pub static LINK: Message = Message::new(&[
    NONE,
    one("trace_id", TRACE_ID),
    one("span_id", SPAN_ID),
    one("trace_state", Kind::Str),
    many("attributes", ATTRIBUTES),
    one("dropped_attributes_count", Kind::Varint),
    one("flags", Kind::Fixed32),
]);

pub static STATUS: Message = Message::new(&[
    NONE,
    NONE, // 1 is reserved (the deprecated code)
    one("message", Kind::Str),
    one("code", Kind::Varint),
]);

// opentelemetry.proto.logs.v1

pub static LOGS_REQUEST: Message =
    Message::new(&[NONE, many("resource_logs", Kind::Msg(&RESOURCE_LOGS))]);

pub static RESOURCE_LOGS: Message = Message::new(&[
    NONE,
    one("resource", Kind::Msg(&RESOURCE)),
    many("scope_logs", Kind::Msg(&SCOPE_LOGS)),
    one("schema_url", Kind::Str),
]);

pub static SCOPE_LOGS: Message = Message::new(&[
    NONE,
    one("scope", Kind::Msg(&SCOPE)),
    many("log_records", Kind::Item(&LOG_RECORD)),
    one("schema_url", Kind::Str),
]);

pub static LOG_RECORD: Message = Message::new(&[
    NONE,
    one("time_unix_nano", Kind::Fixed64),
    one("severity_number", Kind::Varint),
    one("severity_text", Kind::Str),
    NONE, // 4 is reserved
    one("body", Kind::AnyValue),
    many("attributes", ATTRIBUTES),
    one("dropped_attributes_count", Kind::Varint),
    one("flags", Kind::Fixed32),
    one("trace_id", TRACE_ID),
    one("span_id", SPAN_ID),
    one("observed_time_unix_nano", Kind::Fixed64),
    one("event_name", Kind::Str),
]);

// opentelemetry.proto.metrics.v1

pub static METRICS_REQUEST: Message =
    Message::new(&[NONE, many("resource_metrics", Kind::Msg(&RESOURCE_METRICS))]);

pub static RESOURCE_METRICS: Message = Message::new(&[
    NONE,
    one("resource", Kind::Msg(&RESOURCE)),
    many("scope_metrics", Kind::Msg(&SCOPE_METRICS)),
    one("schema_url", Kind::Str),
]);

pub static SCOPE_METRICS: Message = Message::new(&[
    NONE,
    one("scope", Kind::Msg(&SCOPE)),
    many("metrics", Kind::Msg(&METRIC)),
    one("schema_url", Kind::Str),
]);

pub static METRIC: Message = Message::new(&[
    NONE,
    one("name", Kind::Str),
    one("description", Kind::Str),
    one("unit", Kind::Str),
    NONE, // 4 is reserved
    one("gauge", Kind::Msg(&GAUGE)),
    NONE, // 6 is reserved
    one("sum", Kind::Msg(&SUM)),
    NONE, // 8 is reserved
    one("histogram", Kind::Msg(&HISTOGRAM)),
    one("exponential_histogram", Kind::Msg(&EXPONENTIAL_HISTOGRAM)),
    one("summary", Kind::Msg(&SUMMARY)),
    many("metadata", ATTRIBUTES),
]);

pub static GAUGE: Message =
    Message::new(&[NONE, many("data_points", Kind::Item(&NUMBER_DATA_POINT))]);

pub static SUM: Message = Message::new(&[
    NONE,
    many("data_points", Kind::Item(&NUMBER_DATA_POINT)),
    one("aggregation_temporality", Kind::Varint),
    one("is_monotonic", Kind::Varint),
]);

pub static HISTOGRAM: Message = Message::new(&[
    NONE,
    many("data_points", Kind::Item(&HISTOGRAM_DATA_POINT)),
    one("aggregation_temporality", Kind::Varint),
]);

pub static EXPONENTIAL_HISTOGRAM: Message = Message::new(&[
    NONE,
    many("data_points", Kind::Item(&EXPONENTIAL_HISTOGRAM_DATA_POINT)),
    one("aggregation_temporality", Kind::Varint),
]);

pub static SUMMARY: Message =
    Message::new(&[NONE, many("data_points", Kind::Item(&SUMMARY_DATA_POINT))]);

pub static NUMBER_DATA_POINT: Message = Message::new(&[
    NONE,
    NONE, // 1 is reserved
    one("start_time_unix_nano", Kind::Fixed64),
    one("time_unix_nano", Kind::Fixed64),
    one("as_double", Kind::Fixed64),
    many("exemplars", Kind::Msg(&EXEMPLAR)),
    one("as_int", Kind::Fixed64),
    many("attributes", ATTRIBUTES),
    one("flags", Kind::Varint),
]);

pub static HISTOGRAM_DATA_POINT: Message = Message::new(&[
    NONE,
    NONE, // 1 is reserved
    one("start_time_unix_nano", Kind::Fixed64),
    one("time_unix_nano", Kind::Fixed64),
    one("count", Kind::Fixed64),
    one("sum", Kind::Fixed64),
    many("bucket_counts", Kind::PackedFixed64),
    many("explicit_bounds", Kind::PackedFixed64),
    many("exemplars", Kind::Msg(&EXEMPLAR)),
    many("attributes", ATTRIBUTES),
    one("flags", Kind::Varint),
    one("min", Kind::Fixed64),
    one("max", Kind::Fixed64),
]);

pub static EXPONENTIAL_HISTOGRAM_DATA_POINT: Message = Message::new(&[
    NONE,
    many("attributes", ATTRIBUTES),
    one("start_time_unix_nano", Kind::Fixed64),
    one("time_unix_nano", Kind::Fixed64),
    one("count", Kind::Fixed64),
    one("sum", Kind::Fixed64),
    one("scale", Kind::Varint),
    one("zero_count", Kind::Fixed64),
    one("positive", Kind::Msg(&BUCKETS)),
    one("negative", Kind::Msg(&BUCKETS)),
    one("flags", Kind::Varint),
    many("exemplars", Kind::Msg(&EXEMPLAR)),
    one("min", Kind::Fixed64),
    one("max", Kind::Fixed64),
    one("zero_threshold", Kind::Fixed64),
]);

pub static BUCKETS: Message = Message::new(&[
    NONE,
    one("offset", Kind::Varint),
    many("bucket_counts", Kind::PackedVarint),
]);

pub static SUMMARY_DATA_POINT: Message = Message::new(&[
    NONE,
    NONE, // 1 is reserved
    one("start_time_unix_nano", Kind::Fixed64),
    one("time_unix_nano", Kind::Fixed64),
    one("count", Kind::Fixed64),
    one("sum", Kind::Fixed64),
    many("quantile_values", Kind::Msg(&VALUE_AT_QUANTILE)),
    many("attributes", ATTRIBUTES),
    one("flags", Kind::Varint),
]);

pub static VALUE_AT_QUANTILE: Message = Message::new(&[
    NONE,
    one("quantile", Kind::Fixed64),
    one("value", Kind::Fixed64),
]);

pub static EXEMPLAR: Message = Message::new(&[
    NONE,
    NONE, // 1 is reserved
    one("time_unix_nano", Kind::Fixed64),
    one("as_double", Kind::Fixed64),
    one("span_id", SPAN_ID),
    one("trace_id", TRACE_ID),
    one("as_int", Kind::Fixed64),
    many("filtered_attributes", ATTRIBUTES),
]);

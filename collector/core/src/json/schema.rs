//! The OTLP messages as a table: for every field its lowerCamelCase JSON
//! name, its snake_case proto name, its field number, its protobuf type and
//! its cardinality. The reader ([`super::read`]) and the writer
//! ([`super::write`]) are driven by this one table, so a field behaves the
//! same in every signal and both directions agree on it.

/// One message type.
#[derive(Debug)]
pub(super) struct Msg {
    pub fields: &'static [Field],
}

/// One field of a message.
#[derive(Debug)]
pub(super) struct Field {
    /// The lowerCamelCase JSON name (what writers emit).
    pub json: &'static str,
    /// The proto (snake_case) name, also accepted by readers.
    pub proto: &'static str,
    pub number: u32,
    pub kind: Kind,
    pub card: Card,
}

/// A field's protobuf type, as far as the JSON mapping cares.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Message(&'static Msg),
    String,
    /// `bytes` written as base64.
    Bytes,
    /// A trace (16 bytes) or span (8 bytes) id, written as hex.
    Id(usize),
    Bool,
    Int32,
    Sint32,
    Uint32,
    Fixed32,
    Int64,
    Uint64,
    Fixed64,
    Sfixed64,
    Double,
    Enum(&'static [(&'static str, i32)]),
}

/// How often a field occurs and whether its zero value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Card {
    /// proto3 implicit presence: the zero value is not on the wire.
    Single,
    /// proto3 `optional`: present even when zero.
    Optional,
    /// A member of the message's `oneof`: present even when zero.
    Oneof,
    Repeated,
}

/// Protobuf wire types.
pub(super) const VARINT: u8 = 0;
pub(super) const I64: u8 = 1;
pub(super) const LEN: u8 = 2;
pub(super) const I32: u8 = 5;

impl Kind {
    /// The wire type of one (unpacked) value of this kind.
    pub(super) fn wire_type(self) -> u8 {
        match self {
            Self::Message(_) | Self::String | Self::Bytes | Self::Id(_) => LEN,
            Self::Bool
            | Self::Int32
            | Self::Sint32
            | Self::Uint32
            | Self::Int64
            | Self::Uint64
            | Self::Enum(_) => VARINT,
            Self::Fixed32 => I32,
            Self::Fixed64 | Self::Sfixed64 | Self::Double => I64,
        }
    }

    /// Whether a repeated field of this kind is packed.
    pub(super) fn packed(self) -> bool {
        self.wire_type() != LEN
    }
}

impl Msg {
    /// The field with this JSON or proto name.
    pub(super) fn by_name(&self, name: &[u8]) -> Option<(usize, &'static Field)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, f)| f.json.as_bytes() == name || f.proto.as_bytes() == name)
    }

    /// The field with this number.
    pub(super) fn by_number(&self, number: u64) -> Option<(usize, &'static Field)> {
        self.fields
            .iter()
            .enumerate()
            .find(|(_, f)| u64::from(f.number) == number)
    }
}

const fn f(json: &'static str, proto: &'static str, number: u32, kind: Kind, card: Card) -> Field {
    Field {
        json,
        proto,
        number,
        kind,
        card,
    }
}

use Card::{Oneof, Optional, Repeated, Single};
use Kind::*;

const TRACE_ID: Kind = Id(16);
const SPAN_ID: Kind = Id(8);

pub(super) static TRACES_REQUEST: Msg = Msg {
    fields: &[f(
        "resourceSpans",
        "resource_spans",
        1,
        Message(&RESOURCE_SPANS),
        Repeated,
    )],
};
pub(super) static METRICS_REQUEST: Msg = Msg {
    fields: &[f(
        "resourceMetrics",
        "resource_metrics",
        1,
        Message(&RESOURCE_METRICS),
        Repeated,
    )],
};
pub(super) static LOGS_REQUEST: Msg = Msg {
    fields: &[f(
        "resourceLogs",
        "resource_logs",
        1,
        Message(&RESOURCE_LOGS),
        Repeated,
    )],
};

// common.proto and resource.proto

static ANY_VALUE: Msg = Msg {
    fields: &[
        f("stringValue", "string_value", 1, String, Oneof),
        f("boolValue", "bool_value", 2, Bool, Oneof),
        f("intValue", "int_value", 3, Int64, Oneof),
        f("doubleValue", "double_value", 4, Double, Oneof),
        f("arrayValue", "array_value", 5, Message(&ARRAY_VALUE), Oneof),
        f(
            "kvlistValue",
            "kvlist_value",
            6,
            Message(&KEY_VALUE_LIST),
            Oneof,
        ),
        f("bytesValue", "bytes_value", 7, Bytes, Oneof),
        f(
            "stringValueStrindex",
            "string_value_strindex",
            8,
            Int32,
            Oneof,
        ),
    ],
};
static ARRAY_VALUE: Msg = Msg {
    fields: &[f("values", "values", 1, Message(&ANY_VALUE), Repeated)],
};
static KEY_VALUE_LIST: Msg = Msg {
    fields: &[f("values", "values", 1, Message(&KEY_VALUE), Repeated)],
};
static KEY_VALUE: Msg = Msg {
    fields: &[
        f("key", "key", 1, String, Single),
        f("value", "value", 2, Message(&ANY_VALUE), Single),
        f("keyStrindex", "key_strindex", 3, Int32, Single),
    ],
};
const ATTRIBUTES: Field = f("attributes", "attributes", 0, Message(&KEY_VALUE), Repeated);
const fn attributes(number: u32) -> Field {
    Field {
        number,
        ..ATTRIBUTES
    }
}
const fn dropped_attributes(number: u32) -> Field {
    f(
        "droppedAttributesCount",
        "dropped_attributes_count",
        number,
        Uint32,
        Single,
    )
}
const fn schema_url(number: u32) -> Field {
    f("schemaUrl", "schema_url", number, String, Single)
}
static SCOPE: Msg = Msg {
    fields: &[
        f("name", "name", 1, String, Single),
        f("version", "version", 2, String, Single),
        attributes(3),
        dropped_attributes(4),
    ],
};
static ENTITY_REF: Msg = Msg {
    fields: &[
        schema_url(1),
        f("type", "type", 2, String, Single),
        f("idKeys", "id_keys", 3, String, Repeated),
        f("descriptionKeys", "description_keys", 4, String, Repeated),
    ],
};
static RESOURCE: Msg = Msg {
    fields: &[
        attributes(1),
        dropped_attributes(2),
        f(
            "entityRefs",
            "entity_refs",
            3,
            Message(&ENTITY_REF),
            Repeated,
        ),
    ],
};
const RESOURCE_FIELD: Field = f("resource", "resource", 1, Message(&RESOURCE), Single);
const SCOPE_FIELD: Field = f("scope", "scope", 1, Message(&SCOPE), Single);

// trace.proto

static RESOURCE_SPANS: Msg = Msg {
    fields: &[
        RESOURCE_FIELD,
        f(
            "scopeSpans",
            "scope_spans",
            2,
            Message(&SCOPE_SPANS),
            Repeated,
        ),
        schema_url(3),
    ],
};
static SCOPE_SPANS: Msg = Msg {
    fields: &[
        SCOPE_FIELD,
        f("spans", "spans", 2, Message(&SPAN), Repeated),
        schema_url(3),
    ],
};
static SPAN_KIND: [(&str, i32); 6] = [
    ("SPAN_KIND_UNSPECIFIED", 0),
    ("SPAN_KIND_INTERNAL", 1),
    ("SPAN_KIND_SERVER", 2),
    ("SPAN_KIND_CLIENT", 3),
    ("SPAN_KIND_PRODUCER", 4),
    ("SPAN_KIND_CONSUMER", 5),
];
static STATUS_CODE: [(&str, i32); 3] = [
    ("STATUS_CODE_UNSET", 0),
    ("STATUS_CODE_OK", 1),
    ("STATUS_CODE_ERROR", 2),
];
static SPAN: Msg = Msg {
    fields: &[
        f("traceId", "trace_id", 1, TRACE_ID, Single),
        f("spanId", "span_id", 2, SPAN_ID, Single),
        f("traceState", "trace_state", 3, String, Single),
        f("parentSpanId", "parent_span_id", 4, SPAN_ID, Single),
        f("flags", "flags", 16, Fixed32, Single),
        f("name", "name", 5, String, Single),
        f("kind", "kind", 6, Enum(&SPAN_KIND), Single),
        f(
            "startTimeUnixNano",
            "start_time_unix_nano",
            7,
            Fixed64,
            Single,
        ),
        f("endTimeUnixNano", "end_time_unix_nano", 8, Fixed64, Single),
        attributes(9),
        dropped_attributes(10),
        f("events", "events", 11, Message(&EVENT), Repeated),
        f(
            "droppedEventsCount",
            "dropped_events_count",
            12,
            Uint32,
            Single,
        ),
        f("links", "links", 13, Message(&LINK), Repeated),
        f(
            "droppedLinksCount",
            "dropped_links_count",
            14,
            Uint32,
            Single,
        ),
        f("status", "status", 15, Message(&STATUS), Single),
    ],
};
static EVENT: Msg = Msg {
    fields: &[
        f("timeUnixNano", "time_unix_nano", 1, Fixed64, Single),
        f("name", "name", 2, String, Single),
        attributes(3),
        dropped_attributes(4),
    ],
};
static LINK: Msg = Msg {
    fields: &[
        f("traceId", "trace_id", 1, TRACE_ID, Single),
        f("spanId", "span_id", 2, SPAN_ID, Single),
        f("traceState", "trace_state", 3, String, Single),
        attributes(4),
        dropped_attributes(5),
        f("flags", "flags", 6, Fixed32, Single),
    ],
};
static STATUS: Msg = Msg {
    fields: &[
        f("message", "message", 2, String, Single),
        f("code", "code", 3, Enum(&STATUS_CODE), Single),
    ],
};

// metrics.proto

static RESOURCE_METRICS: Msg = Msg {
    fields: &[
        RESOURCE_FIELD,
        f(
            "scopeMetrics",
            "scope_metrics",
            2,
            Message(&SCOPE_METRICS),
            Repeated,
        ),
        schema_url(3),
    ],
};
static SCOPE_METRICS: Msg = Msg {
    fields: &[
        SCOPE_FIELD,
        f("metrics", "metrics", 2, Message(&METRIC), Repeated),
        schema_url(3),
    ],
};
static METRIC: Msg = Msg {
    fields: &[
        f("name", "name", 1, String, Single),
        f("description", "description", 2, String, Single),
        f("unit", "unit", 3, String, Single),
        f("gauge", "gauge", 5, Message(&GAUGE), Oneof),
        f("sum", "sum", 7, Message(&SUM), Oneof),
        f("histogram", "histogram", 9, Message(&HISTOGRAM), Oneof),
        f(
            "exponentialHistogram",
            "exponential_histogram",
            10,
            Message(&EXPONENTIAL_HISTOGRAM),
            Oneof,
        ),
        f("summary", "summary", 11, Message(&SUMMARY), Oneof),
        f("metadata", "metadata", 12, Message(&KEY_VALUE), Repeated),
    ],
};
static TEMPORALITY: [(&str, i32); 3] = [
    ("AGGREGATION_TEMPORALITY_UNSPECIFIED", 0),
    ("AGGREGATION_TEMPORALITY_DELTA", 1),
    ("AGGREGATION_TEMPORALITY_CUMULATIVE", 2),
];
const fn data_points(msg: &'static Msg) -> Field {
    f("dataPoints", "data_points", 1, Message(msg), Repeated)
}
const TEMPORALITY_FIELD: Field = f(
    "aggregationTemporality",
    "aggregation_temporality",
    2,
    Enum(&TEMPORALITY),
    Single,
);
static GAUGE: Msg = Msg {
    fields: &[data_points(&NUMBER_POINT)],
};
static SUM: Msg = Msg {
    fields: &[
        data_points(&NUMBER_POINT),
        TEMPORALITY_FIELD,
        f("isMonotonic", "is_monotonic", 3, Bool, Single),
    ],
};
static HISTOGRAM: Msg = Msg {
    fields: &[data_points(&HISTOGRAM_POINT), TEMPORALITY_FIELD],
};
static EXPONENTIAL_HISTOGRAM: Msg = Msg {
    fields: &[data_points(&EXPONENTIAL_POINT), TEMPORALITY_FIELD],
};
static SUMMARY: Msg = Msg {
    fields: &[data_points(&SUMMARY_POINT)],
};
const fn start_time(number: u32) -> Field {
    f(
        "startTimeUnixNano",
        "start_time_unix_nano",
        number,
        Fixed64,
        Single,
    )
}
const fn time(number: u32) -> Field {
    f("timeUnixNano", "time_unix_nano", number, Fixed64, Single)
}
const fn count(number: u32) -> Field {
    f("count", "count", number, Fixed64, Single)
}
const fn flags(number: u32) -> Field {
    f("flags", "flags", number, Uint32, Single)
}
const fn exemplars(number: u32) -> Field {
    f(
        "exemplars",
        "exemplars",
        number,
        Message(&EXEMPLAR),
        Repeated,
    )
}
const fn double(json: &'static str, number: u32, card: Card) -> Field {
    f(json, json, number, Double, card)
}
static NUMBER_POINT: Msg = Msg {
    fields: &[
        attributes(7),
        start_time(2),
        time(3),
        f("asDouble", "as_double", 4, Double, Oneof),
        f("asInt", "as_int", 6, Sfixed64, Oneof),
        exemplars(5),
        flags(8),
    ],
};
static HISTOGRAM_POINT: Msg = Msg {
    fields: &[
        attributes(9),
        start_time(2),
        time(3),
        count(4),
        double("sum", 5, Optional),
        f("bucketCounts", "bucket_counts", 6, Fixed64, Repeated),
        f("explicitBounds", "explicit_bounds", 7, Double, Repeated),
        exemplars(8),
        flags(10),
        double("min", 11, Optional),
        double("max", 12, Optional),
    ],
};
static EXPONENTIAL_POINT: Msg = Msg {
    fields: &[
        attributes(1),
        start_time(2),
        time(3),
        count(4),
        double("sum", 5, Optional),
        f("scale", "scale", 6, Sint32, Single),
        f("zeroCount", "zero_count", 7, Fixed64, Single),
        f("positive", "positive", 8, Message(&BUCKETS), Single),
        f("negative", "negative", 9, Message(&BUCKETS), Single),
        flags(10),
        exemplars(11),
        double("min", 12, Optional),
        double("max", 13, Optional),
        f("zeroThreshold", "zero_threshold", 14, Double, Single),
    ],
};
static BUCKETS: Msg = Msg {
    fields: &[
        f("offset", "offset", 1, Sint32, Single),
        f("bucketCounts", "bucket_counts", 2, Uint64, Repeated),
    ],
};
static SUMMARY_POINT: Msg = Msg {
    fields: &[
        attributes(7),
        start_time(2),
        time(3),
        count(4),
        double("sum", 5, Single),
        f(
            "quantileValues",
            "quantile_values",
            6,
            Message(&VALUE_AT_QUANTILE),
            Repeated,
        ),
        flags(8),
    ],
};
static VALUE_AT_QUANTILE: Msg = Msg {
    fields: &[double("quantile", 1, Single), double("value", 2, Single)],
};
static EXEMPLAR: Msg = Msg {
    fields: &[
        f(
            "filteredAttributes",
            "filtered_attributes",
            7,
            Message(&KEY_VALUE),
            Repeated,
        ),
        time(2),
        f("asDouble", "as_double", 3, Double, Oneof),
        f("asInt", "as_int", 6, Sfixed64, Oneof),
        f("spanId", "span_id", 4, SPAN_ID, Single),
        f("traceId", "trace_id", 5, TRACE_ID, Single),
    ],
};

// logs.proto

static RESOURCE_LOGS: Msg = Msg {
    fields: &[
        RESOURCE_FIELD,
        f("scopeLogs", "scope_logs", 2, Message(&SCOPE_LOGS), Repeated),
        schema_url(3),
    ],
};
static SCOPE_LOGS: Msg = Msg {
    fields: &[
        SCOPE_FIELD,
        f(
            "logRecords",
            "log_records",
            2,
            Message(&LOG_RECORD),
            Repeated,
        ),
        schema_url(3),
    ],
};
static SEVERITY: [(&str, i32); 25] = [
    ("SEVERITY_NUMBER_UNSPECIFIED", 0),
    ("SEVERITY_NUMBER_TRACE", 1),
    ("SEVERITY_NUMBER_TRACE2", 2),
    ("SEVERITY_NUMBER_TRACE3", 3),
    ("SEVERITY_NUMBER_TRACE4", 4),
    ("SEVERITY_NUMBER_DEBUG", 5),
    ("SEVERITY_NUMBER_DEBUG2", 6),
    ("SEVERITY_NUMBER_DEBUG3", 7),
    ("SEVERITY_NUMBER_DEBUG4", 8),
    ("SEVERITY_NUMBER_INFO", 9),
    ("SEVERITY_NUMBER_INFO2", 10),
    ("SEVERITY_NUMBER_INFO3", 11),
    ("SEVERITY_NUMBER_INFO4", 12),
    ("SEVERITY_NUMBER_WARN", 13),
    ("SEVERITY_NUMBER_WARN2", 14),
    ("SEVERITY_NUMBER_WARN3", 15),
    ("SEVERITY_NUMBER_WARN4", 16),
    ("SEVERITY_NUMBER_ERROR", 17),
    ("SEVERITY_NUMBER_ERROR2", 18),
    ("SEVERITY_NUMBER_ERROR3", 19),
    ("SEVERITY_NUMBER_ERROR4", 20),
    ("SEVERITY_NUMBER_FATAL", 21),
    ("SEVERITY_NUMBER_FATAL2", 22),
    ("SEVERITY_NUMBER_FATAL3", 23),
    ("SEVERITY_NUMBER_FATAL4", 24),
];
static LOG_RECORD: Msg = Msg {
    fields: &[
        time(1),
        f(
            "observedTimeUnixNano",
            "observed_time_unix_nano",
            11,
            Fixed64,
            Single,
        ),
        f(
            "severityNumber",
            "severity_number",
            2,
            Enum(&SEVERITY),
            Single,
        ),
        f("severityText", "severity_text", 3, String, Single),
        f("body", "body", 5, Message(&ANY_VALUE), Single),
        attributes(6),
        dropped_attributes(7),
        f("flags", "flags", 8, Fixed32, Single),
        f("traceId", "trace_id", 9, TRACE_ID, Single),
        f("spanId", "span_id", 10, SPAN_ID, Single),
        f("eventName", "event_name", 12, String, Single),
    ],
};

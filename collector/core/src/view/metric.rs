//! A metric and its data points of each type (number, histogram,
//! exponential histogram, summary), read from their bytes.

use super::{
    Attributes, FromWire, ItemView, Repeated, double, fixed64, message, repeated, sint32, string,
    varint,
};
use crate::wire::{Field, Fields, WireError, fields, read_varint, schema, walk_fields};

const NAME: u32 = schema::METRIC.number("name");
const DESCRIPTION: u32 = schema::METRIC.number("description");
const UNIT: u32 = schema::METRIC.number("unit");
const GAUGE: u32 = schema::METRIC.number("gauge");
const SUM: u32 = schema::METRIC.number("sum");
const HISTOGRAM: u32 = schema::METRIC.number("histogram");
const EXPONENTIAL_HISTOGRAM: u32 = schema::METRIC.number("exponential_histogram");
const SUMMARY: u32 = schema::METRIC.number("summary");
const METADATA: u32 = schema::METRIC.number("metadata");

/// Every data container holds its points in the same field.
pub(super) const DATA_POINTS: u32 = schema::GAUGE.number("data_points");
const _: () = assert!(
    schema::SUM.number("data_points") == DATA_POINTS
        && schema::HISTOGRAM.number("data_points") == DATA_POINTS
        && schema::EXPONENTIAL_HISTOGRAM.number("data_points") == DATA_POINTS
        && schema::SUMMARY.number("data_points") == DATA_POINTS
);
const SUM_TEMPORALITY: u32 = schema::SUM.number("aggregation_temporality");
const SUM_MONOTONIC: u32 = schema::SUM.number("is_monotonic");
const HISTOGRAM_TEMPORALITY: u32 = schema::HISTOGRAM.number("aggregation_temporality");
const EXPONENTIAL_TEMPORALITY: u32 =
    schema::EXPONENTIAL_HISTOGRAM.number("aggregation_temporality");

const NUMBER_START: u32 = schema::NUMBER_DATA_POINT.number("start_time_unix_nano");
const NUMBER_TIME: u32 = schema::NUMBER_DATA_POINT.number("time_unix_nano");
const NUMBER_DOUBLE: u32 = schema::NUMBER_DATA_POINT.number("as_double");
const NUMBER_INT: u32 = schema::NUMBER_DATA_POINT.number("as_int");
const NUMBER_EXEMPLARS: u32 = schema::NUMBER_DATA_POINT.number("exemplars");
const NUMBER_ATTRIBUTES: u32 = schema::NUMBER_DATA_POINT.number("attributes");
const NUMBER_FLAGS: u32 = schema::NUMBER_DATA_POINT.number("flags");

const HISTOGRAM_START: u32 = schema::HISTOGRAM_DATA_POINT.number("start_time_unix_nano");
const HISTOGRAM_TIME: u32 = schema::HISTOGRAM_DATA_POINT.number("time_unix_nano");
const HISTOGRAM_COUNT: u32 = schema::HISTOGRAM_DATA_POINT.number("count");
const HISTOGRAM_SUM: u32 = schema::HISTOGRAM_DATA_POINT.number("sum");
const HISTOGRAM_BUCKETS: u32 = schema::HISTOGRAM_DATA_POINT.number("bucket_counts");
const HISTOGRAM_BOUNDS: u32 = schema::HISTOGRAM_DATA_POINT.number("explicit_bounds");
const HISTOGRAM_EXEMPLARS: u32 = schema::HISTOGRAM_DATA_POINT.number("exemplars");
const HISTOGRAM_ATTRIBUTES: u32 = schema::HISTOGRAM_DATA_POINT.number("attributes");
const HISTOGRAM_FLAGS: u32 = schema::HISTOGRAM_DATA_POINT.number("flags");
const HISTOGRAM_MIN: u32 = schema::HISTOGRAM_DATA_POINT.number("min");
const HISTOGRAM_MAX: u32 = schema::HISTOGRAM_DATA_POINT.number("max");

const EXP_ATTRIBUTES: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("attributes");
const EXP_START: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("start_time_unix_nano");
const EXP_TIME: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("time_unix_nano");
const EXP_COUNT: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("count");
const EXP_SUM: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("sum");
const EXP_SCALE: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("scale");
const EXP_ZERO_COUNT: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("zero_count");
const EXP_POSITIVE: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("positive");
const EXP_NEGATIVE: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("negative");
const EXP_FLAGS: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("flags");
const EXP_EXEMPLARS: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("exemplars");
const EXP_MIN: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("min");
const EXP_MAX: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("max");
const EXP_ZERO_THRESHOLD: u32 = schema::EXPONENTIAL_HISTOGRAM_DATA_POINT.number("zero_threshold");
const BUCKETS_OFFSET: u32 = schema::BUCKETS.number("offset");
const BUCKETS_COUNTS: u32 = schema::BUCKETS.number("bucket_counts");

const SUMMARY_START: u32 = schema::SUMMARY_DATA_POINT.number("start_time_unix_nano");
const SUMMARY_TIME: u32 = schema::SUMMARY_DATA_POINT.number("time_unix_nano");
const SUMMARY_COUNT: u32 = schema::SUMMARY_DATA_POINT.number("count");
const SUMMARY_SUM: u32 = schema::SUMMARY_DATA_POINT.number("sum");
const SUMMARY_QUANTILES: u32 = schema::SUMMARY_DATA_POINT.number("quantile_values");
const SUMMARY_ATTRIBUTES: u32 = schema::SUMMARY_DATA_POINT.number("attributes");
const SUMMARY_FLAGS: u32 = schema::SUMMARY_DATA_POINT.number("flags");
const QUANTILE: u32 = schema::VALUE_AT_QUANTILE.number("quantile");
const QUANTILE_VALUE: u32 = schema::VALUE_AT_QUANTILE.number("value");

const EXEMPLAR_TIME: u32 = schema::EXEMPLAR.number("time_unix_nano");
const EXEMPLAR_DOUBLE: u32 = schema::EXEMPLAR.number("as_double");
const EXEMPLAR_SPAN_ID: u32 = schema::EXEMPLAR.number("span_id");
const EXEMPLAR_TRACE_ID: u32 = schema::EXEMPLAR.number("trace_id");
const EXEMPLAR_INT: u32 = schema::EXEMPLAR.number("as_int");
const EXEMPLAR_ATTRIBUTES: u32 = schema::EXEMPLAR.number("filtered_attributes");

/// Which data a metric holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricType {
    /// No data set.
    #[default]
    Empty,
    /// `gauge`.
    Gauge,
    /// `sum`.
    Sum,
    /// `histogram`.
    Histogram,
    /// `exponential_histogram`.
    ExponentialHistogram,
    /// `summary`.
    Summary,
}

/// A `Metric`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Metric<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `name`.
    pub name: &'a str,
    /// `description`.
    pub description: &'a str,
    /// `unit`.
    pub unit: &'a str,
    /// Which data it holds.
    pub metric_type: MetricType,
    /// The data message's bytes (`Gauge`, `Sum`, ...), empty when none.
    pub data: &'a [u8],
    /// `aggregation_temporality` of a sum or a histogram (0 unspecified,
    /// 1 delta, 2 cumulative).
    pub aggregation_temporality: i32,
    /// `is_monotonic` of a sum.
    pub is_monotonic: bool,
}

impl<'a> FromWire<'a> for Metric<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut metric = Metric {
            raw,
            ..Metric::default()
        };
        walk_fields(raw, |f| {
            let metric_type = match f.number {
                NAME => {
                    metric.name = string(&f)?;
                    return Ok(true);
                }
                DESCRIPTION => {
                    metric.description = string(&f)?;
                    return Ok(true);
                }
                UNIT => {
                    metric.unit = string(&f)?;
                    return Ok(true);
                }
                number => match MetricType::of_field(number) {
                    Some(t) => t,
                    None => return Ok(true),
                },
            };
            // A oneof: the last member on the wire wins.
            metric.metric_type = metric_type;
            metric.data = message(&f)?;
            metric.aggregation_temporality = 0;
            metric.is_monotonic = false;
            for g in fields(metric.data) {
                let g = g?;
                match (metric_type, g.number) {
                    (MetricType::Sum, SUM_TEMPORALITY)
                    | (MetricType::Histogram, HISTOGRAM_TEMPORALITY)
                    | (MetricType::ExponentialHistogram, EXPONENTIAL_TEMPORALITY) => {
                        metric.aggregation_temporality = varint(&g)? as i32;
                    }
                    (MetricType::Sum, SUM_MONOTONIC) => metric.is_monotonic = varint(&g)? != 0,
                    _ => {}
                }
            }
            Ok(true)
        })?;
        Ok(metric)
    }
}

impl MetricType {
    /// The type whose data is in field `number` of a `Metric`.
    pub(super) fn of_field(number: u32) -> Option<MetricType> {
        match number {
            GAUGE => Some(MetricType::Gauge),
            SUM => Some(MetricType::Sum),
            HISTOGRAM => Some(MetricType::Histogram),
            EXPONENTIAL_HISTOGRAM => Some(MetricType::ExponentialHistogram),
            SUMMARY => Some(MetricType::Summary),
            _ => None,
        }
    }
}

impl<'a> ItemView<'a> for Metric<'a> {
    const ATTRIBUTES: u32 = METADATA;
    const TRACE_STATE: Option<u32> = None;
    const HAS_POINTS: bool = true;

    fn count(raw: &[u8]) -> Result<usize, WireError> {
        // Every data field's points, as the validating walk counts them
        // (a metric has one; a second would be a repeated oneof).
        let mut n = 0;
        walk_fields(raw, |f| {
            if MetricType::of_field(f.number).is_some() {
                for g in fields(message(&f)?) {
                    if g?.number == DATA_POINTS {
                        n += 1;
                    }
                }
            }
            Ok(true)
        })?;
        Ok(n)
    }
}

impl<'a> Metric<'a> {
    /// Its data points, of its type.
    pub fn data_points(&self) -> DataPoints<'a> {
        DataPoints {
            fields: fields(self.data),
            metric_type: self.metric_type,
        }
    }

    /// Its `metadata` attributes.
    pub fn metadata(&self) -> Attributes<'a> {
        Attributes::new(self.raw, METADATA)
    }
}

/// The data points of a metric, in wire order. After an error the
/// iterator ends.
#[derive(Debug, Clone)]
pub struct DataPoints<'a> {
    fields: Fields<'a>,
    metric_type: MetricType,
}

impl<'a> Iterator for DataPoints<'a> {
    type Item = Result<DataPoint<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.fields.next()? {
                Ok(f) if f.number == DATA_POINTS => {
                    let point = message(&f).and_then(|raw| DataPoint::read(self.metric_type, raw));
                    if point.is_err() {
                        self.fields = fields(&[]);
                    }
                    return Some(point);
                }
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// A number point's or an exemplar's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// `as_int`.
    Int(i64),
    /// `as_double`.
    Double(f64),
}

/// One data point of any type.
#[derive(Debug, Clone, Copy)]
pub enum DataPoint<'a> {
    /// Of a gauge or a sum.
    Number(NumberPoint<'a>),
    /// Of a histogram.
    Histogram(HistogramPoint<'a>),
    /// Of an exponential histogram.
    ExponentialHistogram(ExponentialHistogramPoint<'a>),
    /// Of a summary.
    Summary(SummaryPoint<'a>),
}

impl<'a> DataPoint<'a> {
    /// Reads a point of a metric of type `metric_type` (a metric without
    /// data has no points to read).
    pub(super) fn read(metric_type: MetricType, raw: &'a [u8]) -> Result<DataPoint<'a>, WireError> {
        Ok(match metric_type {
            MetricType::Histogram => DataPoint::Histogram(HistogramPoint::from_wire(raw)?),
            MetricType::ExponentialHistogram => {
                DataPoint::ExponentialHistogram(ExponentialHistogramPoint::from_wire(raw)?)
            }
            MetricType::Summary => DataPoint::Summary(SummaryPoint::from_wire(raw)?),
            MetricType::Gauge | MetricType::Sum | MetricType::Empty => {
                DataPoint::Number(NumberPoint::from_wire(raw)?)
            }
        })
    }

    /// The point's bytes.
    pub fn raw(&self) -> &'a [u8] {
        match self {
            DataPoint::Number(p) => p.raw,
            DataPoint::Histogram(p) => p.raw,
            DataPoint::ExponentialHistogram(p) => p.raw,
            DataPoint::Summary(p) => p.raw,
        }
    }

    /// The field of the point's message holding its attributes.
    pub(super) fn attributes_field(&self) -> u32 {
        match self {
            DataPoint::Number(_) => NUMBER_ATTRIBUTES,
            DataPoint::Histogram(_) => HISTOGRAM_ATTRIBUTES,
            DataPoint::ExponentialHistogram(_) => EXP_ATTRIBUTES,
            DataPoint::Summary(_) => SUMMARY_ATTRIBUTES,
        }
    }

    /// Its attributes.
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes::new(self.raw(), self.attributes_field())
    }

    /// `start_time_unix_nano`.
    pub fn start_time_unix_nano(&self) -> u64 {
        match self {
            DataPoint::Number(p) => p.start_time_unix_nano,
            DataPoint::Histogram(p) => p.start_time_unix_nano,
            DataPoint::ExponentialHistogram(p) => p.start_time_unix_nano,
            DataPoint::Summary(p) => p.start_time_unix_nano,
        }
    }

    /// `time_unix_nano`.
    pub fn time_unix_nano(&self) -> u64 {
        match self {
            DataPoint::Number(p) => p.time_unix_nano,
            DataPoint::Histogram(p) => p.time_unix_nano,
            DataPoint::ExponentialHistogram(p) => p.time_unix_nano,
            DataPoint::Summary(p) => p.time_unix_nano,
        }
    }

    /// `flags`.
    pub fn flags(&self) -> u32 {
        match self {
            DataPoint::Number(p) => p.flags,
            DataPoint::Histogram(p) => p.flags,
            DataPoint::ExponentialHistogram(p) => p.flags,
            DataPoint::Summary(p) => p.flags,
        }
    }

    /// Its exemplars (a summary point has none).
    pub fn exemplars(&self) -> Repeated<'a, Exemplar<'a>> {
        match self {
            DataPoint::Number(p) => repeated(p.raw, NUMBER_EXEMPLARS),
            DataPoint::Histogram(p) => repeated(p.raw, HISTOGRAM_EXEMPLARS),
            DataPoint::ExponentialHistogram(p) => repeated(p.raw, EXP_EXEMPLARS),
            DataPoint::Summary(_) => repeated(&[], 0),
        }
    }
}

/// A `NumberDataPoint` (of a gauge or a sum).
#[derive(Debug, Clone, Copy, Default)]
pub struct NumberPoint<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `start_time_unix_nano`.
    pub start_time_unix_nano: u64,
    /// `time_unix_nano`.
    pub time_unix_nano: u64,
    /// `as_int` or `as_double`, when set.
    pub value: Option<Number>,
    /// `flags`.
    pub flags: u32,
}

impl<'a> FromWire<'a> for NumberPoint<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut p = NumberPoint {
            raw,
            ..NumberPoint::default()
        };
        walk_fields(raw, |f| {
            match f.number {
                NUMBER_START => p.start_time_unix_nano = fixed64(&f)?,
                NUMBER_TIME => p.time_unix_nano = fixed64(&f)?,
                NUMBER_DOUBLE => p.value = Some(Number::Double(double(&f)?)),
                NUMBER_INT => p.value = Some(Number::Int(fixed64(&f)? as i64)),
                NUMBER_FLAGS => p.flags = varint(&f)? as u32,
                _ => {}
            }
            Ok(true)
        })?;
        Ok(p)
    }
}

/// A `HistogramDataPoint`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistogramPoint<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `start_time_unix_nano`.
    pub start_time_unix_nano: u64,
    /// `time_unix_nano`.
    pub time_unix_nano: u64,
    /// `count`.
    pub count: u64,
    /// `sum`, when set.
    pub sum: Option<f64>,
    /// `min`, when set.
    pub min: Option<f64>,
    /// `max`, when set.
    pub max: Option<f64>,
    /// `flags`.
    pub flags: u32,
}

impl<'a> FromWire<'a> for HistogramPoint<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut p = HistogramPoint {
            raw,
            ..HistogramPoint::default()
        };
        walk_fields(raw, |f| {
            match f.number {
                HISTOGRAM_START => p.start_time_unix_nano = fixed64(&f)?,
                HISTOGRAM_TIME => p.time_unix_nano = fixed64(&f)?,
                HISTOGRAM_COUNT => p.count = fixed64(&f)?,
                HISTOGRAM_SUM => p.sum = Some(double(&f)?),
                HISTOGRAM_MIN => p.min = Some(double(&f)?),
                HISTOGRAM_MAX => p.max = Some(double(&f)?),
                HISTOGRAM_FLAGS => p.flags = varint(&f)? as u32,
                _ => {}
            }
            Ok(true)
        })?;
        Ok(p)
    }
}

impl<'a> HistogramPoint<'a> {
    /// `bucket_counts`.
    pub fn bucket_counts(&self) -> Packed<'a> {
        Packed::new(self.raw, HISTOGRAM_BUCKETS, 1)
    }

    /// `explicit_bounds`.
    pub fn explicit_bounds(&self) -> impl Iterator<Item = Result<f64, WireError>> + use<'a> {
        Packed::new(self.raw, HISTOGRAM_BOUNDS, 1).map(|bits| bits.map(f64::from_bits))
    }
}

/// An `ExponentialHistogramDataPoint`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExponentialHistogramPoint<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `start_time_unix_nano`.
    pub start_time_unix_nano: u64,
    /// `time_unix_nano`.
    pub time_unix_nano: u64,
    /// `count`.
    pub count: u64,
    /// `sum`, when set.
    pub sum: Option<f64>,
    /// `scale`.
    pub scale: i32,
    /// `zero_count`.
    pub zero_count: u64,
    /// `positive` buckets, when set.
    pub positive: Option<Buckets<'a>>,
    /// `negative` buckets, when set.
    pub negative: Option<Buckets<'a>>,
    /// `flags`.
    pub flags: u32,
    /// `min`, when set.
    pub min: Option<f64>,
    /// `max`, when set.
    pub max: Option<f64>,
    /// `zero_threshold`.
    pub zero_threshold: f64,
}

impl<'a> FromWire<'a> for ExponentialHistogramPoint<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut p = ExponentialHistogramPoint {
            raw,
            ..ExponentialHistogramPoint::default()
        };
        walk_fields(raw, |f| {
            match f.number {
                EXP_START => p.start_time_unix_nano = fixed64(&f)?,
                EXP_TIME => p.time_unix_nano = fixed64(&f)?,
                EXP_COUNT => p.count = fixed64(&f)?,
                EXP_SUM => p.sum = Some(double(&f)?),
                EXP_SCALE => p.scale = sint32(&f)?,
                EXP_ZERO_COUNT => p.zero_count = fixed64(&f)?,
                EXP_POSITIVE => p.positive = Some(Buckets::from_wire(message(&f)?)?),
                EXP_NEGATIVE => p.negative = Some(Buckets::from_wire(message(&f)?)?),
                EXP_FLAGS => p.flags = varint(&f)? as u32,
                EXP_MIN => p.min = Some(double(&f)?),
                EXP_MAX => p.max = Some(double(&f)?),
                EXP_ZERO_THRESHOLD => p.zero_threshold = double(&f)?,
                _ => {}
            }
            Ok(true)
        })?;
        Ok(p)
    }
}

/// The `Buckets` of an exponential histogram point.
#[derive(Debug, Clone, Copy, Default)]
pub struct Buckets<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `offset`.
    pub offset: i32,
}

impl<'a> FromWire<'a> for Buckets<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut b = Buckets { raw, offset: 0 };
        walk_fields(raw, |f| {
            if f.number == BUCKETS_OFFSET {
                b.offset = sint32(&f)?;
            }
            Ok(true)
        })?;
        Ok(b)
    }
}

impl<'a> Buckets<'a> {
    /// `bucket_counts`.
    pub fn bucket_counts(&self) -> Packed<'a> {
        Packed::new(self.raw, BUCKETS_COUNTS, 0)
    }
}

/// A `SummaryDataPoint`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SummaryPoint<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `start_time_unix_nano`.
    pub start_time_unix_nano: u64,
    /// `time_unix_nano`.
    pub time_unix_nano: u64,
    /// `count`.
    pub count: u64,
    /// `sum`.
    pub sum: f64,
    /// `flags`.
    pub flags: u32,
}

impl<'a> FromWire<'a> for SummaryPoint<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut p = SummaryPoint {
            raw,
            ..SummaryPoint::default()
        };
        walk_fields(raw, |f| {
            match f.number {
                SUMMARY_START => p.start_time_unix_nano = fixed64(&f)?,
                SUMMARY_TIME => p.time_unix_nano = fixed64(&f)?,
                SUMMARY_COUNT => p.count = fixed64(&f)?,
                SUMMARY_SUM => p.sum = double(&f)?,
                SUMMARY_FLAGS => p.flags = varint(&f)? as u32,
                _ => {}
            }
            Ok(true)
        })?;
        Ok(p)
    }
}

impl<'a> SummaryPoint<'a> {
    /// `quantile_values`.
    pub fn quantile_values(&self) -> Repeated<'a, Quantile> {
        repeated(self.raw, SUMMARY_QUANTILES)
    }
}

/// A summary's `ValueAtQuantile`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quantile {
    /// `quantile`.
    pub quantile: f64,
    /// `value`.
    pub value: f64,
}

impl FromWire<'_> for Quantile {
    fn from_wire(raw: &[u8]) -> Result<Self, WireError> {
        let mut q = Quantile::default();
        walk_fields(raw, |f| {
            match f.number {
                QUANTILE => q.quantile = double(&f)?,
                QUANTILE_VALUE => q.value = double(&f)?,
                _ => {}
            }
            Ok(true)
        })?;
        Ok(q)
    }
}

/// An `Exemplar`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exemplar<'a> {
    /// The message's bytes.
    pub raw: &'a [u8],
    /// `time_unix_nano`.
    pub time_unix_nano: u64,
    /// `as_int` or `as_double`, when set.
    pub value: Option<Number>,
    /// `span_id`.
    pub span_id: &'a [u8],
    /// `trace_id`.
    pub trace_id: &'a [u8],
}

impl<'a> FromWire<'a> for Exemplar<'a> {
    fn from_wire(raw: &'a [u8]) -> Result<Self, WireError> {
        let mut e = Exemplar {
            raw,
            ..Exemplar::default()
        };
        walk_fields(raw, |f| {
            match f.number {
                EXEMPLAR_TIME => e.time_unix_nano = fixed64(&f)?,
                EXEMPLAR_DOUBLE => e.value = Some(Number::Double(double(&f)?)),
                EXEMPLAR_INT => e.value = Some(Number::Int(fixed64(&f)? as i64)),
                EXEMPLAR_SPAN_ID => e.span_id = message(&f)?,
                EXEMPLAR_TRACE_ID => e.trace_id = message(&f)?,
                _ => {}
            }
            Ok(true)
        })?;
        Ok(e)
    }
}

impl<'a> Exemplar<'a> {
    /// `filtered_attributes`.
    pub fn filtered_attributes(&self) -> Attributes<'a> {
        Attributes::new(self.raw, EXEMPLAR_ATTRIBUTES)
    }
}

/// A `repeated` number field (`fixed64`/`double` or `uint64`), packed or
/// one value per field, as raw `u64`s in wire order. After an error the
/// iterator ends.
#[derive(Debug, Clone)]
pub struct Packed<'a> {
    fields: Fields<'a>,
    number: u32,
    /// 1 for 8-byte values, 0 for varints.
    wire_type: u8,
    /// The rest of the packed run being read.
    run: &'a [u8],
}

impl<'a> Packed<'a> {
    fn new(raw: &'a [u8], number: u32, wire_type: u8) -> Packed<'a> {
        Packed {
            fields: fields(raw),
            number,
            wire_type,
            run: &[],
        }
    }

    /// The next value of the packed run (not empty).
    fn next_in_run(&mut self) -> Result<u64, WireError> {
        if self.wire_type == 0 {
            let mut pos = 0;
            let value = read_varint(self.run, &mut pos);
            self.run = self.run.get(pos..).unwrap_or_default();
            return value.inspect_err(|_| self.end());
        }
        match self.run.split_first_chunk::<8>() {
            Some((value, rest)) => {
                self.run = rest;
                Ok(u64::from_le_bytes(*value))
            }
            None => {
                self.end();
                Err(WireError::new(
                    crate::wire::Reason::Malformed,
                    String::new(),
                    format!(
                        "packed field {} is not a whole number of values",
                        self.number
                    ),
                ))
            }
        }
    }

    /// Stops the iteration (after an error).
    fn end(&mut self) {
        self.run = &[];
        self.fields = fields(&[]);
    }

    fn one(&self, f: &Field<'a>) -> Result<u64, WireError> {
        if self.wire_type == 0 {
            varint(f)
        } else {
            fixed64(f)
        }
    }
}

impl Iterator for Packed<'_> {
    type Item = Result<u64, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if !self.run.is_empty() {
                return Some(self.next_in_run());
            }
            match self.fields.next()? {
                Ok(f) if f.number == self.number && f.wire_type == 2 => self.run = f.payload,
                Ok(f) if f.number == self.number => {
                    let value = self.one(&f);
                    if value.is_err() {
                        self.end();
                    }
                    return Some(value);
                }
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

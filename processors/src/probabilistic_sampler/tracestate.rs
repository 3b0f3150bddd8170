//! W3C `tracestate` with its OpenTelemetry member (`ot=rv:...;th:...`),
//! parsed and written back as the Collector's `pkg/sampling` does: the
//! same validity rules, the same size limits, `ot` first on output and
//! the other members in their order.

use super::threshold::{Randomness, Threshold};

const MAX_W3C_LENGTH: usize = 1024;
const MAX_W3C_MEMBERS: usize = 32;
const MAX_KEY_LENGTH: usize = 256;
const MAX_TENANT_LENGTH: usize = 241;
const MAX_SYSTEM_LENGTH: usize = 14;
const MAX_OTEL_LENGTH: usize = 256;

/// Why a `tracestate` could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceStateError {
    /// Too long, too many members, or a key over its limit.
    Size,
    /// Not the W3C or OpenTelemetry syntax.
    Syntax,
    /// An `rv` that is not 14 hex digits.
    RValue,
    /// A `th` that is not 1 to 14 hex digits.
    TValue,
}

impl std::fmt::Display for TraceStateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TraceStateError::Size => "invalid tracestate size",
            TraceStateError::Syntax => "invalid tracestate syntax",
            TraceStateError::RValue => "r-value must have 14 hex digits",
            TraceStateError::TValue => "invalid t-value",
        })
    }
}

/// The OpenTelemetry member of a `tracestate`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OtelTraceState<'a> {
    /// The R-value as written, and its randomness.
    rvalue: Option<(Option<&'a str>, Randomness)>,
    /// The T-value as written, and its threshold.
    tvalue: Option<(Option<&'a str>, Threshold)>,
    extra: Vec<(&'a str, &'a str)>,
}

/// A parsed W3C `tracestate`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct W3cTraceState<'a> {
    otel: OtelTraceState<'a>,
    extra: Vec<(&'a str, &'a str)>,
}

impl<'a> W3cTraceState<'a> {
    /// Parses `input`; the empty string is an empty state. On a problem
    /// the error comes with what was read before and around it, as the
    /// Collector keeps it (only a sampler at 0% goes on with that).
    pub fn parse(input: &'a str) -> (W3cTraceState<'a>, Option<TraceStateError>) {
        let mut state = W3cTraceState::default();
        if input.is_empty() {
            return (state, None);
        }
        if input.len() > MAX_W3C_LENGTH {
            return (state, Some(TraceStateError::Size));
        }
        if !valid_w3c(input) {
            return (state, Some(TraceStateError::Syntax));
        }
        let mut first_error = None;
        for (index, member) in go_split(input, ',').enumerate() {
            // The Collector counts every member, empty ones too, and stops
            // at the 32nd.
            if index + 1 >= MAX_W3C_MEMBERS {
                return (state, Some(TraceStateError::Size));
            }
            let member = member.trim_matches([' ', '\t']);
            let Some((key, value)) = member.split_once('=') else {
                continue;
            };
            if let Err(e) = check_key_size(key) {
                first_error.get_or_insert(e);
                continue;
            }
            if key == "ot" {
                let (otel, error) = OtelTraceState::parse(value);
                state.otel = otel;
                if let Some(e) = error {
                    first_error.get_or_insert(e);
                }
            } else {
                state.extra.push((key, value));
            }
        }
        (state, first_error)
    }

    /// The OpenTelemetry member.
    pub fn otel(&self) -> &OtelTraceState<'a> {
        &self.otel
    }

    /// The OpenTelemetry member, to change.
    pub fn otel_mut(&mut self) -> &mut OtelTraceState<'a> {
        &mut self.otel
    }

    /// The `tracestate` as the Collector writes it: `ot=` first (when it
    /// has anything), then the other members.
    pub fn serialize(&self) -> String {
        // Room for `ot=rv:<14>;th:<14>` and a short vendor member, so the
        // usual state is written without growing the string.
        let mut out = String::with_capacity(64);
        self.serialize_into(&mut out);
        out
    }

    /// Appends [`W3cTraceState::serialize`]'s text to `out`.
    pub fn serialize_into(&self, out: &mut String) {
        let start = out.len();
        if self.otel.has_any_value() {
            out.push_str("ot=");
            self.otel.serialize_into(out);
        }
        for (key, value) in &self.extra {
            if out.len() != start {
                out.push(',');
            }
            out.push_str(key);
            out.push('=');
            out.push_str(value);
        }
    }
}

impl<'a> OtelTraceState<'a> {
    /// Parses the value of an `ot` member; on a bad `rv` or `th` the state
    /// read so far comes back with the error.
    fn parse(input: &'a str) -> (OtelTraceState<'a>, Option<TraceStateError>) {
        let mut state = OtelTraceState::default();
        if input.len() > MAX_OTEL_LENGTH {
            return (state, Some(TraceStateError::Size));
        }
        if !valid_otel(input) {
            return (state, Some(TraceStateError::Syntax));
        }
        let mut first_error = None;
        for member in input.split(';') {
            let Some((key, value)) = member.split_once(':') else {
                continue;
            };
            match key {
                "rv" => {
                    state.rvalue = Randomness::from_rvalue(value).map(|r| (Some(value), r));
                    if state.rvalue.is_none() {
                        first_error.get_or_insert(TraceStateError::RValue);
                    }
                }
                "th" => {
                    state.tvalue = Threshold::from_tvalue(value).map(|t| (Some(value), t));
                    if state.tvalue.is_none() {
                        first_error.get_or_insert(TraceStateError::TValue);
                    }
                }
                _ => state.extra.push((key, value)),
            }
        }
        (state, first_error)
    }

    /// The explicit randomness (`rv`), if any.
    pub fn randomness(&self) -> Option<Randomness> {
        self.rvalue.as_ref().map(|(_, r)| *r)
    }

    /// The threshold (`th`), if any.
    pub fn threshold(&self) -> Option<Threshold> {
        self.tvalue.as_ref().map(|(_, t)| *t)
    }

    /// Sets `rv`.
    pub fn set_randomness(&mut self, randomness: Randomness) {
        self.rvalue = Some((None, randomness));
    }

    /// Removes `th`.
    pub fn clear_threshold(&mut self) {
        self.tvalue = None;
    }

    /// Records that the item was sampled at `threshold`; refused (and
    /// left as it was) when the item already carries a higher threshold,
    /// since sampling cannot raise a probability.
    pub fn update_threshold(&mut self, threshold: Threshold) -> Result<(), InconsistentSampling> {
        if matches!(self.threshold(), Some(existing) if existing > threshold) {
            return Err(InconsistentSampling);
        }
        // The never threshold has no T-value: writing it removes `th`.
        self.tvalue = (threshold != Threshold::NEVER).then_some((None, threshold));
        Ok(())
    }

    fn has_any_value(&self) -> bool {
        self.rvalue.is_some() || self.tvalue.is_some() || !self.extra.is_empty()
    }

    fn serialize_into(&self, out: &mut String) {
        let start = out.len();
        let separate = |out: &mut String| {
            if out.len() != start {
                out.push(';');
            }
        };
        // As written when read, else in the canonical form.
        if let Some((text, randomness)) = &self.rvalue {
            separate(out);
            out.push_str("rv:");
            match text {
                Some(text) => out.push_str(text),
                None => randomness.write_rvalue(out),
            }
        }
        if let Some((text, threshold)) = &self.tvalue {
            separate(out);
            out.push_str("th:");
            match text {
                Some(text) => out.push_str(text),
                None => threshold.write_tvalue(out),
            }
        }
        for (key, value) in &self.extra {
            separate(out);
            out.push_str(key);
            out.push(':');
            out.push_str(value);
        }
    }
}

/// An item already sampled at a lower probability than asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InconsistentSampling;

/// The pieces the Collector's scanner visits: `str::split`, less a final
/// empty piece (a trailing separator ends the input, it opens no member).
fn go_split(input: &str, separator: char) -> impl Iterator<Item = &str> {
    let mut pieces = input.split(separator).peekable();
    std::iter::from_fn(move || {
        let piece = pieces.next()?;
        if piece.is_empty() && pieces.peek().is_none() {
            return None;
        }
        Some(piece)
    })
}

fn check_key_size(key: &str) -> Result<(), TraceStateError> {
    if key.len() > MAX_KEY_LENGTH {
        return Err(TraceStateError::Size);
    }
    if let Some((tenant, system)) = key.split_once('@')
        && (tenant.len() > MAX_TENANT_LENGTH || system.len() > MAX_SYSTEM_LENGTH)
    {
        return Err(TraceStateError::Size);
    }
    Ok(())
}

fn lc_alpha(c: u8) -> bool {
    c.is_ascii_lowercase()
}

fn lc_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn key_char(c: u8) -> bool {
    lc_alnum(c) || matches!(c, b'_' | b'-' | b'*' | b'/')
}

fn non_blank_value_char(c: u8) -> bool {
    matches!(c, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e)
}

fn valid_w3c(input: &str) -> bool {
    input
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
        .all(|member| match member.split_once('=') {
            Some((key, value)) if !key.is_empty() => valid_w3c_key(key) && valid_w3c_value(value),
            _ => false,
        })
}

fn valid_w3c_key(key: &str) -> bool {
    let starts = |s: &str, first: fn(u8) -> bool| {
        s.as_bytes()
            .split_first()
            .is_some_and(|(c, rest)| first(*c) && rest.iter().all(|c| key_char(*c)))
    };
    match key.split_once('@') {
        Some((tenant, system)) => starts(tenant, lc_alnum) && starts(system, lc_alpha),
        None => starts(key, lc_alpha),
    }
}

fn valid_w3c_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    match bytes.split_last() {
        Some((last, rest)) if bytes.len() <= 256 => {
            non_blank_value_char(*last)
                && rest.iter().all(|c| *c == b' ' || non_blank_value_char(*c))
        }
        _ => false,
    }
}

fn valid_otel(input: &str) -> bool {
    !input.is_empty()
        && !input.ends_with(';')
        && input.split(';').all(|member| match member.split_once(':') {
            Some((key, value)) => {
                key.as_bytes()
                    .split_first()
                    .is_some_and(|(c, rest)| lc_alpha(*c) && rest.iter().all(|c| lc_alnum(*c)))
                    && value
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
            }
            None => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(input: &str) -> Result<String, TraceStateError> {
        match W3cTraceState::parse(input) {
            (state, None) => Ok(state.serialize()),
            (_, Some(e)) => Err(e),
        }
    }

    #[test]
    fn members_keep_their_order_and_ot_moves_first() {
        assert_eq!(round_trip("").as_deref(), Ok(""));
        assert_eq!(round_trip("a=1, b=2").as_deref(), Ok("a=1,b=2"));
        assert_eq!(
            round_trip("x=y,ot=th:8;rv:0123456789abcd;p:q , z=w").as_deref(),
            Ok("ot=rv:0123456789abcd;th:8;p:q,x=y,z=w")
        );
        assert_eq!(round_trip("a=1,,b=2").as_deref(), Ok("a=1,b=2"));
        assert_eq!(round_trip("tenant@sys=v").as_deref(), Ok("tenant@sys=v"));
    }

    #[test]
    fn bad_states_are_refused_as_the_collector_refuses_them() {
        assert_eq!(round_trip("A=1"), Err(TraceStateError::Syntax));
        assert_eq!(round_trip("a=1=2"), Err(TraceStateError::Syntax));
        assert_eq!(round_trip("a= "), Err(TraceStateError::Syntax));
        assert_eq!(round_trip("ot=th:xyz"), Err(TraceStateError::TValue));
        assert_eq!(round_trip("ot=rv:12"), Err(TraceStateError::RValue));
        assert_eq!(round_trip("ot=th:8;"), Err(TraceStateError::Syntax));
        assert_eq!(round_trip("ot=TH:8"), Err(TraceStateError::Syntax));
        // 31 members are taken, a 32nd is too many; a trailing comma is
        // not a member.
        let members = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(round_trip(&members(32)), Err(TraceStateError::Size));
        assert!(round_trip(&members(31)).is_ok());
        assert!(round_trip(&format!("{},", members(31))).is_ok());
        assert_eq!(
            round_trip(&format!("{},,", members(31))),
            Err(TraceStateError::Size)
        );
        assert_eq!(round_trip(&"a".repeat(1025)), Err(TraceStateError::Size));
        // What was read around a bad value is kept with the error.
        let (state, error) = W3cTraceState::parse("a=1,ot=rv:12;th:4,b=2");
        assert_eq!(error, Some(TraceStateError::RValue));
        assert_eq!(state.serialize(), "ot=th:4,a=1,b=2");
    }

    #[test]
    fn thresholds_only_go_down_in_probability() {
        let (mut state, error) = W3cTraceState::parse("ot=th:c");
        assert_eq!(error, None);
        let eighth = Threshold::from_tvalue("e").expect("valid");
        assert_eq!(state.otel_mut().update_threshold(eighth), Ok(()));
        assert_eq!(state.serialize(), "ot=th:e");
        let half = Threshold::from_tvalue("8").expect("valid");
        assert_eq!(
            state.otel_mut().update_threshold(half),
            Err(InconsistentSampling)
        );
        assert_eq!(state.serialize(), "ot=th:e");
    }
}

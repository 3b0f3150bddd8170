//! Consistent-sampling arithmetic of the OpenTelemetry specification, as
//! the Collector's `pkg/sampling` computes it: 56-bit randomness (the
//! R-value), rejection thresholds (the T-value), probabilities and their
//! conversion at a given hex-digit precision. An item is sampled when its
//! threshold is at most its randomness.

/// 2^56: the number of randomness values; a threshold of this value
/// samples nothing.
pub const MAX_ADJUSTED_COUNT: u64 = 1 << 56;
/// Hex digits of a full R-value or T-value.
pub const NUM_HEX_DIGITS: usize = 14;
/// Smallest representable sampling probability (2^-56).
pub const MIN_SAMPLING_PROBABILITY: f64 = 1.0 / MAX_ADJUSTED_COUNT as f64;

/// A rejection threshold: items whose randomness is below it are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Threshold(u64);

/// 56 bits of randomness, from a trace id, an R-value or a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Randomness(u64);

impl Threshold {
    /// Samples everything (T-value `0`).
    pub const ALWAYS: Threshold = Threshold(0);
    /// Samples nothing (no T-value).
    pub const NEVER: Threshold = Threshold(MAX_ADJUSTED_COUNT);

    /// Parses a T-value: 1 to 14 hex digits, extended with zeros.
    pub fn from_tvalue(s: &str) -> Option<Threshold> {
        if s.is_empty() || s.len() > NUM_HEX_DIGITS {
            return None;
        }
        let value = parse_hex(s)?;
        Some(Threshold(value << (4 * (NUM_HEX_DIGITS - s.len()))))
    }

    /// A threshold from its 56-bit value; `None` at 2^56 and above.
    pub fn from_unsigned(value: u64) -> Option<Threshold> {
        (value < MAX_ADJUSTED_COUNT).then_some(Threshold(value))
    }

    /// The T-value: `0` for always, empty for never, otherwise the
    /// 14-digit form without trailing zeros.
    pub fn tvalue(self) -> String {
        let mut out = String::new();
        self.write_tvalue(&mut out);
        out
    }

    /// Appends the T-value to `out` (see [`Threshold::tvalue`]).
    pub fn write_tvalue(self, out: &mut String) {
        if self == Threshold::ALWAYS {
            out.push('0');
        } else if self.0 < MAX_ADJUSTED_COUNT {
            // The 14 digits less the trailing zeros (the value is not 0).
            let zeros = (self.0.trailing_zeros() / 4) as usize;
            write_hex(self.0, 14 - zeros.min(13), out);
        }
    }

    /// Whether an item with this randomness is sampled.
    pub fn should_sample(self, randomness: Randomness) -> bool {
        self.0 <= randomness.0
    }

    /// The sampling probability this threshold stands for.
    pub fn probability(self) -> f64 {
        (MAX_ADJUSTED_COUNT - self.0.min(MAX_ADJUSTED_COUNT)) as f64 / MAX_ADJUSTED_COUNT as f64
    }

    /// The threshold for `fraction` rounded to `precision` significant
    /// hex digits (0 means all 14), as the Collector rounds it: the
    /// precision grows with the leading zero digits of the fraction or of
    /// its complement. `None` outside [2^-56, 1].
    pub fn from_probability(fraction: f64, precision: usize) -> Option<Threshold> {
        let precision = if precision == 0 {
            NUM_HEX_DIGITS
        } else {
            precision
        };
        if !(MIN_SAMPLING_PROBABILITY..=1.0).contains(&fraction) {
            return None;
        }
        if fraction == 1.0 {
            return Some(Threshold::ALWAYS);
        }
        // Go's integer division truncates towards zero, as Rust's does.
        let extra_f = frexp_exponent(fraction) / -4;
        let extra_r = frexp_exponent(1.0 - fraction) / -4;
        let precision = (precision as i64 + i64::from(extra_f.max(extra_r)))
            .min(NUM_HEX_DIGITS as i64) as usize;
        let scaled = (fraction * MAX_ADJUSTED_COUNT as f64).round() as u64;
        let mut threshold = MAX_ADJUSTED_COUNT - scaled;
        let shift = 4 * (NUM_HEX_DIGITS - precision);
        if shift != 0 {
            threshold += 1 << (shift - 1);
            threshold >>= shift;
            threshold <<= shift;
        }
        // Rounding up may reach 2^56, which is the never-sample threshold.
        Some(Threshold(threshold))
    }
}

impl Randomness {
    /// Randomness that every threshold but never samples: what an item
    /// without randomness is treated as.
    pub const ALL_PROBABILITIES: Randomness = Randomness(MAX_ADJUSTED_COUNT - 1);

    /// The W3C randomness of a trace id: its last 7 bytes.
    pub fn from_trace_id(id: &[u8; 16]) -> Randomness {
        let mut low = [0u8; 8];
        low.copy_from_slice(&id[8..]);
        Randomness(u64::from_be_bytes(low) & (MAX_ADJUSTED_COUNT - 1))
    }

    /// Parses an R-value: exactly 14 hex digits.
    pub fn from_rvalue(s: &str) -> Option<Randomness> {
        if s.len() != NUM_HEX_DIGITS {
            return None;
        }
        parse_hex(s).map(Randomness)
    }

    /// Randomness from its 56-bit value; `None` at 2^56 and above.
    pub fn from_unsigned(value: u64) -> Option<Randomness> {
        (value < MAX_ADJUSTED_COUNT).then_some(Randomness(value))
    }

    /// The R-value: 14 lowercase hex digits.
    pub fn rvalue(self) -> String {
        let mut out = String::with_capacity(14);
        self.write_rvalue(&mut out);
        out
    }

    /// Appends the R-value to `out`.
    pub fn write_rvalue(self, out: &mut String) {
        write_hex(self.0, 14, out);
    }
}

/// Appends the first `digits` of the 14 hex digits of the 56-bit `value`.
fn write_hex(value: u64, digits: usize, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 14];
    for (i, digit) in text.iter_mut().enumerate() {
        *digit = HEX[((value >> (4 * (13 - i))) & 0xf) as usize];
    }
    // Hex digits are ASCII: the check cannot fail.
    out.push_str(std::str::from_utf8(&text[..digits.min(14)]).unwrap_or_default());
}

/// Go's `strconv.ParseUint(s, 16, 64)`: hex digits of either case only
/// (no sign, no `0x` prefix, no `_` with an explicit base).
fn parse_hex(s: &str) -> Option<u64> {
    if s.bytes().all(|b| b.is_ascii_hexdigit()) {
        u64::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// The binary exponent of `x` as Go's `math.Frexp` gives it: `x` =
/// frac x 2^exp with frac in [0.5, 1); 0 for zero.
fn frexp_exponent(x: f64) -> i32 {
    if x == 0.0 || !x.is_finite() {
        return 0;
    }
    let bits = x.abs().to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal: normalise first.
        frexp_exponent(x * (1u64 << 54) as f64) - 54
    } else {
        biased - 1022
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tvalue(p: f64, precision: usize) -> String {
        Threshold::from_probability(p, precision)
            .map(Threshold::tvalue)
            .unwrap_or_else(|| "error".to_owned())
    }

    #[test]
    fn probabilities_encode_as_the_collector_encodes_them() {
        // The examples of pkg/sampling's documentation.
        assert_eq!(tvalue(1.0 / 3.0, 3), "aab");
        assert_eq!(tvalue(2.0 / 3.0, 3), "555");
        assert_eq!(tvalue(1.0, 3), "0");
        assert_eq!(tvalue(1.0 / 3.0, 0), "aaaaaaaaaaaaac");
        assert_eq!(tvalue(0.5, 4), "8");
        assert_eq!(tvalue(0.25, 4), "c");
        assert_eq!(tvalue(0.1, 4), "e666");
        assert_eq!(tvalue(0.01, 4), "fd70a");
        assert_eq!(tvalue(0.0, 4), "error");
        assert_eq!(tvalue(1.5, 4), "error");
        assert_eq!(tvalue(MIN_SAMPLING_PROBABILITY, 4), "ffffffffffffff");
    }

    #[test]
    fn tvalues_and_rvalues_round_trip() {
        let t = Threshold::from_tvalue("e666").expect("valid");
        assert_eq!(t.tvalue(), "e666");
        assert!(Threshold::from_tvalue("").is_none());
        assert!(Threshold::from_tvalue("123456789abcdef").is_none());
        assert!(Threshold::from_tvalue("xyz").is_none());
        let r = Randomness::from_rvalue("0123456789abcd").expect("valid");
        assert_eq!(r.rvalue(), "0123456789abcd");
        assert!(Randomness::from_rvalue("0123").is_none());
        assert_eq!(Threshold::NEVER.tvalue(), "");
        assert!(!Threshold::NEVER.should_sample(Randomness::ALL_PROBABILITIES));
        assert!(Threshold::ALWAYS.should_sample(Randomness(0)));
    }

    #[test]
    fn trace_id_randomness_is_its_last_seven_bytes() {
        let mut id = [0xffu8; 16];
        id[8] = 0x12;
        assert_eq!(Randomness::from_trace_id(&id).rvalue(), "ffffffffffffff");
        id[9] = 0x01;
        assert_eq!(Randomness::from_trace_id(&id).rvalue(), "01ffffffffffff");
    }

    #[test]
    fn frexp_matches_go() {
        assert_eq!(frexp_exponent(0.5), 0);
        assert_eq!(frexp_exponent(0.25), -1);
        assert_eq!(frexp_exponent(0.75), 0);
        assert_eq!(frexp_exponent(1.0), 1);
        assert_eq!(frexp_exponent(MIN_SAMPLING_PROBABILITY), -55);
        assert_eq!(frexp_exponent(f64::MIN_POSITIVE / 4.0), -1023);
    }
}

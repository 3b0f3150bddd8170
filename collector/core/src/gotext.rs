//! Numbers as the OpenTelemetry Collector writes them as text, where Tern
//! must produce the same characters (hash inputs, label values): a double
//! as pdata's `Value.AsString` and Go's JSON encoder write it.

use std::fmt::Write as _;

/// Appends `f` as pdata's `AsString` writes a double (ES6 number to
/// string): plain decimal from 1e-6 up to 1e21, exponent form (`1e+21`,
/// `1e-7`) outside, and `NaN`, `Infinity`, `-Infinity`. Go's JSON encoder
/// writes finite doubles the same way.
pub fn double(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else if f != 0.0 && (f.abs() < 1e-6 || f.abs() >= 1e21) {
        let text = format!("{f:e}");
        match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{mantissa}e+{exp}");
            }
            _ => out.push_str(&text),
        }
    } else {
        let _ = write!(out, "{f}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn doubles_read_as_pdata_writes_them() {
        let text = |f: f64| {
            let mut s = String::new();
            super::double(f, &mut s);
            s
        };
        assert_eq!(text(1.5), "1.5");
        assert_eq!(text(100.0), "100");
        assert_eq!(text(0.0), "0");
        assert_eq!(text(1e21), "1e+21");
        assert_eq!(text(1.5e-7), "1.5e-7");
        assert_eq!(text(-2e22), "-2e+22");
        assert_eq!(text(f64::NAN), "NaN");
        assert_eq!(text(f64::INFINITY), "Infinity");
        assert_eq!(text(f64::NEG_INFINITY), "-Infinity");
    }
}

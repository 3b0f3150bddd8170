//! A strict JSON scanner over a byte slice (RFC 8259): whitespace, literals,
//! numbers (returned as their text, so each field parses them with its own
//! rules), strings (unescaped, checked as UTF-8) and skipping a whole value.
//! Lone UTF-16 surrogates in `\u` escapes become U+FFFD, as the Collector's
//! decoder does. Positions are byte offsets into the body.

/// What went wrong, and where (a byte offset into the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SyntaxError {
    pub offset: usize,
    pub reason: String,
}

pub(super) type Result<T> = std::result::Result<T, SyntaxError>;

/// The end of the run of plain string content from `i` (up to a quote, a
/// backslash or a control character: what JSON writes escaped), and
/// whether the run is ASCII.
/// Eight bytes at a time while none of them ends the run.
pub(super) fn plain_run(src: &[u8], mut i: usize) -> (usize, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Non-zero when a byte of `x` is zero (or, past one that is, maybe
    // falsely; the byte loop below settles it).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut high = 0u64;
    while let Some(chunk) = src.get(i..i + 8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let w = u64::from_le_bytes(bytes);
        let stop = zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS);
        if stop != 0 {
            break;
        }
        high |= w;
        i += 8;
    }
    while let Some(&b) = src.get(i) {
        if STOP[usize::from(b)] {
            break;
        }
        high |= u64::from(b);
        i += 1;
    }
    (i, high & HIGHS == 0)
}

/// How deep [`Lexer::skip`] follows nested values of unknown fields.
const SKIP_DEPTH: usize = 128;

/// The bytes that end a run of plain string content: the closing quote,
/// a backslash, and control characters (which JSON requires escaped).
const STOP: [bool; 256] = {
    let mut stop = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        stop[b] = true;
        b += 1;
    }
    stop[b'"' as usize] = true;
    stop[b'\\' as usize] = true;
    stop
};

/// The next value's type, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    Object,
    Array,
    String,
    Number,
    True,
    False,
    Null,
    End,
    Other(u8),
}

#[derive(Debug)]
pub(super) struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(src: &'a [u8]) -> Lexer<'a> {
        Lexer { src, pos: 0 }
    }

    pub(super) fn offset(&self) -> usize {
        self.pos
    }

    pub(super) fn error<T>(&self, reason: impl Into<String>) -> Result<T> {
        Err(SyntaxError {
            offset: self.pos,
            reason: reason.into(),
        })
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.src.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Skips whitespace and says what comes next, without consuming it.
    pub(super) fn peek(&mut self) -> Next {
        self.ws();
        match self.src.get(self.pos) {
            None => Next::End,
            Some(b'{') => Next::Object,
            Some(b'[') => Next::Array,
            Some(b'"') => Next::String,
            Some(b'-' | b'0'..=b'9') => Next::Number,
            Some(b't') => Next::True,
            Some(b'f') => Next::False,
            Some(b'n') => Next::Null,
            Some(&b) => Next::Other(b),
        }
    }

    /// Consumes `byte` after optional whitespace.
    pub(super) fn expect(&mut self, byte: u8) -> Result<()> {
        self.ws();
        if self.src.get(self.pos) == Some(&byte) {
            self.pos += 1;
            Ok(())
        } else {
            self.unexpected(&format!("'{}'", char::from(byte)))
        }
    }

    /// Consumes `byte` if it comes next (after whitespace).
    pub(super) fn eat(&mut self, byte: u8) -> bool {
        self.ws();
        if self.src.get(self.pos) == Some(&byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// An error saying what was expected and what was found.
    pub(super) fn unexpected<T>(&mut self, expected: &str) -> Result<T> {
        let found = match self.peek() {
            Next::End => "the end of the body".to_string(),
            Next::Object => "an object".to_string(),
            Next::Array => "an array".to_string(),
            Next::String => "a string".to_string(),
            Next::Number => "a number".to_string(),
            Next::True | Next::False => "a boolean".to_string(),
            Next::Null => "null".to_string(),
            Next::Other(b) if b.is_ascii_graphic() => format!("'{}'", char::from(b)),
            Next::Other(b) => format!("byte 0x{b:02x}"),
        };
        self.error(format!("expected {expected}, found {found}"))
    }

    /// Consumes the literal `word` (`true`, `false`, `null`).
    pub(super) fn literal(&mut self, word: &str) -> Result<()> {
        self.ws();
        if self.src[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            self.error(format!("invalid literal, expected {word}"))
        }
    }

    /// Consumes a number and returns its text, checked against the JSON
    /// number grammar.
    pub(super) fn number(&mut self) -> Result<&'a str> {
        self.ws();
        let start = self.pos;
        let src = self.src;
        let digits = |mut i: usize| {
            while src.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        let mut i = start;
        if src.get(i) == Some(&b'-') {
            i += 1;
        }
        match src.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => i = digits(i),
            _ => return self.error("invalid number"),
        }
        if src.get(i) == Some(&b'.') {
            let end = digits(i + 1);
            if end == i + 1 {
                self.pos = end;
                return self.error("invalid number: no digit after '.'");
            }
            i = end;
        }
        if let Some(b'e' | b'E') = src.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = src.get(i) {
                i += 1;
            }
            let end = digits(i);
            if end == i {
                self.pos = end;
                return self.error("invalid number: no digit in the exponent");
            }
            i = end;
        }
        self.pos = i;
        // The grammar above admits ASCII only.
        std::str::from_utf8(&src[start..i]).or_else(|_| self.error("invalid number"))
    }

    /// Consumes a string and returns its raw content (between the quotes)
    /// when it has no escapes, checked as UTF-8; otherwise appends the
    /// unescaped content to `buf` and returns `None`.
    pub(super) fn string(&mut self, buf: &mut Vec<u8>) -> Result<Option<&'a [u8]>> {
        self.expect(b'"')?;
        let src = self.src;
        let start = self.pos;
        let mut seg = start;
        let mut escaped = false;
        loop {
            let (i, ascii) = plain_run(src, self.pos);
            self.pos = i;
            let segment = &src[seg..i];
            if !ascii && let Err(e) = std::str::from_utf8(segment) {
                self.pos = seg + e.valid_up_to();
                return self.error("invalid UTF-8 in a string");
            }
            match src.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    if !escaped {
                        return Ok(Some(segment));
                    }
                    buf.extend_from_slice(segment);
                    return Ok(None);
                }
                Some(b'\\') => {
                    buf.extend_from_slice(segment);
                    escaped = true;
                    self.pos = i + 1;
                    self.escape(buf)?;
                    seg = self.pos;
                }
                Some(_) => return self.error("control character in a string"),
                None => {
                    self.pos = start;
                    return self.error("unterminated string");
                }
            }
        }
    }

    /// One escape sequence, after its backslash.
    fn escape(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        let Some(&b) = self.src.get(self.pos) else {
            return self.error("unterminated string");
        };
        self.pos += 1;
        let simple = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let unit = self.hex4()?;
                let c = match unit {
                    0xd800..=0xdbff if self.src[self.pos..].starts_with(b"\\u") => {
                        let save = self.pos;
                        self.pos += 2;
                        let low = self.hex4()?;
                        if (0xdc00..=0xdfff).contains(&low) {
                            let code = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                            char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
                        } else {
                            // Not a pair: the high half alone, then the
                            // next escape on its own.
                            self.pos = save;
                            char::REPLACEMENT_CHARACTER
                        }
                    }
                    _ => char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER),
                };
                let mut utf8 = [0u8; 4];
                buf.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                return Ok(());
            }
            _ => {
                self.pos -= 1;
                return self.error("invalid escape in a string");
            }
        };
        buf.push(simple);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32> {
        let Some(digits) = self.src.get(self.pos..self.pos + 4) else {
            return self.error("invalid \\u escape");
        };
        let mut v = 0u32;
        for &d in digits {
            let Some(x) = char::from(d).to_digit(16) else {
                return self.error("invalid \\u escape");
            };
            v = v * 16 + x;
        }
        self.pos += 4;
        Ok(v)
    }

    /// Skips one value of any type (the value of an unknown field),
    /// checking its syntax.
    pub(super) fn skip(&mut self) -> Result<()> {
        self.skip_nested(0)
    }

    fn skip_nested(&mut self, depth: usize) -> Result<()> {
        if depth > SKIP_DEPTH {
            return self.error(format!("nested deeper than {SKIP_DEPTH} levels"));
        }
        match self.peek() {
            Next::Object => {
                self.pos += 1;
                if self.eat(b'}') {
                    return Ok(());
                }
                loop {
                    self.string(&mut Vec::new())?;
                    self.expect(b':')?;
                    self.skip_nested(depth + 1)?;
                    if !self.eat(b',') {
                        return self.expect(b'}');
                    }
                }
            }
            Next::Array => {
                self.pos += 1;
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.skip_nested(depth + 1)?;
                    if !self.eat(b',') {
                        return self.expect(b']');
                    }
                }
            }
            Next::String => self.string(&mut Vec::new()).map(drop),
            Next::Number => self.number().map(drop),
            Next::True => self.literal("true"),
            Next::False => self.literal("false"),
            Next::Null => self.literal("null"),
            Next::End | Next::Other(_) => self.unexpected("a value"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn string(text: &str) -> Result<String> {
        let mut buf = Vec::new();
        let mut lexer = Lexer::new(text.as_bytes());
        let bytes = match lexer.string(&mut buf)? {
            Some(s) => s.to_vec(),
            None => buf,
        };
        Ok(String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn strings_unescape_and_check_utf8() {
        assert_eq!(string(r#""plain""#).unwrap(), "plain");
        assert_eq!(string(r#""a\"b\\c\/\n\t""#).unwrap(), "a\"b\\c/\n\t");
        assert_eq!(string(r#""\u00e9\ud83d\ude00""#).unwrap(), "é😀");
        // Lone surrogates become U+FFFD, as the Collector's decoder does.
        assert_eq!(string(r#""\ud800x""#).unwrap(), "\u{fffd}x");
        assert_eq!(string(r#""\udc00""#).unwrap(), "\u{fffd}");
        assert_eq!(string(r#""\ud800\u0041""#).unwrap(), "\u{fffd}A");
        for bad in [r#""\x""#, "\"a\nb\"", r#""abc"#, r#""\u12""#] {
            assert!(string(bad).is_err(), "{bad}");
        }
        let mut buf = Vec::new();
        let err = Lexer::new(b"\"ab\xff\"").string(&mut buf).unwrap_err();
        assert_eq!(err.offset, 3);
    }

    #[test]
    fn plain_runs_stop_where_the_byte_loop_would() {
        let text = "abcdefgh ijklmnop \"rest";
        let quote = text.find('"').unwrap();
        for start in 0..quote {
            assert_eq!(plain_run(text.as_bytes(), start), (quote, true), "{start}");
        }
        for stop in [b'\\', 0x00, 0x1f, b'"'] {
            for at in 0..20 {
                let mut bytes = vec![b'a'; 24];
                bytes[at] = stop;
                assert_eq!(plain_run(&bytes, 0), (at, true), "{stop} at {at}");
            }
        }
        let mixed = "0123456789é0123456789".as_bytes();
        assert_eq!(plain_run(mixed, 0), (mixed.len(), false));
        assert_eq!(plain_run(b"\x7f\x20!~abcdefgh", 0), (12, true));
    }

    #[test]
    fn numbers_follow_the_json_grammar() {
        for good in ["0", "-0", "12", "1.5", "-1.5e-3", "1E+9"] {
            assert_eq!(Lexer::new(good.as_bytes()).number().unwrap(), good);
        }
        // "01" stops after the 0; the caller sees the stray 1.
        assert_eq!(Lexer::new(b"01").number().unwrap(), "0");
        for bad in ["-", "1.", ".5", "1e", "+1"] {
            assert!(Lexer::new(bad.as_bytes()).number().is_err(), "{bad}");
        }
    }

    #[test]
    fn skip_checks_syntax_and_depth() {
        let mut l = Lexer::new(br#"{"a":[1,{"b":null}],"c":"d"} rest"#);
        l.skip().unwrap();
        assert_eq!(l.peek(), Next::Other(b'r'));
        assert!(Lexer::new(b"[1,]").skip().is_err());
        assert!(Lexer::new(b"{\"a\" 1}").skip().is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(Lexer::new(deep.as_bytes()).skip().is_err());
    }
}

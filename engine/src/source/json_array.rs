//! Streaming the elements of a top-level JSON array without parsing the whole file.
//!
//! LLaVA-style datasets ship as one `.json` file holding an array of a million records; parsing it
//! whole with serde would hold the entire tree in memory. This scanner walks the bytes once, tracking
//! only nesting depth and whether it is inside a string (honouring `\` escapes), and hands back each
//! top-level element's bytes for `serde_json::from_slice`. It does not validate the elements — a
//! broken element becomes a per-record reject, and the scanner still finds the next `,` at depth 0.
//! An element longer than the scanner's cap is walked to its end but only its first `cap + 1`
//! bytes are kept, so its size is known without holding it (the reader rejects it as too large).

use std::io::{self, BufRead};

/// One element: its raw bytes and the 1-based line of the file it starts on.
#[derive(Debug)]
pub(crate) struct Element {
    /// The element's bytes, or its first `cap + 1` bytes when `size` exceeds the cap.
    pub bytes: Vec<u8>,
    /// The element's full length in bytes.
    pub size: u64,
    pub line: u64,
}

/// Structural problems that end the scan: no array, or the array never closes.
#[derive(Debug)]
pub(crate) enum ScanError {
    Io(io::Error),
    /// The first non-blank byte is not `[`; `found` is that byte, `None` for an empty file.
    NotAnArray {
        found: Option<u8>,
    },
    /// Something other than whitespace or a `,` between elements.
    Malformed(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Start,
    InArray,
    Done,
}

#[derive(Debug)]
pub(crate) struct ArrayScanner<R> {
    reader: R,
    state: State,
    line: u64,
    /// Most bytes of one element kept (plus one, to tell an oversize element).
    cap: u64,
}

impl<R: BufRead> ArrayScanner<R> {
    pub fn new(reader: R, cap: u64) -> Self {
        ArrayScanner {
            reader,
            state: State::Start,
            line: 1,
            cap,
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.reader.fill_buf()?.first().copied())
    }

    fn bump(&mut self) {
        if let Ok([b, ..]) = self.reader.fill_buf() {
            if *b == b'\n' {
                self.line += 1;
            }
            self.reader.consume(1);
        }
    }

    /// Skips whitespace (and a UTF-8 byte-order mark at the very start); returns the next byte.
    fn skip_blank(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.bump(),
                Some(0xEF) if self.state == State::Start => {
                    let buf = self.reader.fill_buf()?;
                    if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
                        self.reader.consume(3);
                    } else {
                        return Ok(Some(0xEF));
                    }
                }
                other => return Ok(other),
            }
        }
    }

    /// The next element, or `None` after the closing `]`.
    pub fn next_element(&mut self) -> Result<Option<Element>, ScanError> {
        let result = self.scan();
        if result.is_err() {
            self.state = State::Done;
        }
        result
    }

    fn scan(&mut self) -> Result<Option<Element>, ScanError> {
        if self.state == State::Start {
            match self.skip_blank().map_err(ScanError::Io)? {
                Some(b'[') => {
                    self.bump();
                    self.state = State::InArray;
                }
                found => return Err(ScanError::NotAnArray { found }),
            }
        }
        if self.state == State::Done {
            return Ok(None);
        }
        match self.skip_blank().map_err(ScanError::Io)? {
            None => {
                return Err(ScanError::Malformed(
                    "the file ends before the array's closing `]`".into(),
                ));
            }
            Some(b']') => {
                self.bump();
                return self.finish().map(|()| None);
            }
            Some(_) => {}
        }
        let line = self.line;
        let mut bytes = Vec::new();
        let mut size: u64 = 0;
        // Open brackets inside the element. A closer pops back to its matching opener, so one
        // mismatched bracket in a broken element (`{"a": [}`) cannot swallow the rest of the file;
        // a `]` with no `[` open closes the array itself.
        let mut open: Vec<u8> = Vec::new();
        let mut in_string = false;
        let mut escaped = false;
        loop {
            let Some(b) = self.peek().map_err(ScanError::Io)? else {
                return Err(ScanError::Malformed(format!(
                    "the file ends inside the element starting on line {line} (truncated?)"
                )));
            };
            self.bump();
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'[' | b'{' => open.push(b),
                    b',' if open.is_empty() => break,
                    b']' | b'}' => {
                        let opener = if b == b']' { b'[' } else { b'{' };
                        match open.iter().rposition(|&o| o == opener) {
                            Some(at) => open.truncate(at),
                            None if b == b']' => {
                                self.finish()?;
                                break;
                            }
                            None => {}
                        }
                    }
                    _ => {}
                }
            }
            size += 1;
            if size <= self.cap.saturating_add(1) {
                bytes.push(b);
            }
        }
        Ok(Some(Element { bytes, size, line }))
    }

    /// After the closing `]`: only whitespace may follow.
    fn finish(&mut self) -> Result<(), ScanError> {
        self.state = State::Done;
        match self.skip_blank().map_err(ScanError::Io)? {
            None => Ok(()),
            Some(_) => Err(ScanError::Malformed(format!(
                "unexpected data after the array's closing `]` on line {}",
                self.line
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn elements(text: &str) -> (Vec<String>, Option<ScanError>) {
        let mut scanner = ArrayScanner::new(text.as_bytes(), u64::MAX);
        let mut out = Vec::new();
        loop {
            match scanner.next_element() {
                Ok(Some(e)) => out.push(String::from_utf8(e.bytes).unwrap().trim().to_owned()),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn an_element_over_the_cap_is_measured_but_not_kept() {
        let big = format!("{{\"text\": \"{}\"}}", "x".repeat(10_000));
        let text = format!("[{{\"a\": 1}}, {big}, [2]]");
        let mut scanner = ArrayScanner::new(text.as_bytes(), 100);
        let first = scanner.next_element().unwrap().unwrap();
        assert_eq!((first.size, first.bytes.len()), (8, 8));
        let second = scanner.next_element().unwrap().unwrap();
        assert_eq!(second.size, big.len() as u64);
        assert_eq!(second.bytes.len(), 101);
        let third = scanner.next_element().unwrap().unwrap();
        assert_eq!(third.bytes, b"[2]");
        assert!(scanner.next_element().unwrap().is_none());
    }

    #[test]
    fn splits_top_level_elements_honouring_strings_and_escapes() {
        let (els, err) = elements(r#" [ {"a": "x,]}"}, [1, [2]], "q\"],", 3 ] "#);
        assert!(err.is_none());
        assert_eq!(els, [r#"{"a": "x,]}"}"#, "[1, [2]]", r#""q\"],""#, "3"]);
    }

    #[test]
    fn an_empty_array_has_no_elements_and_a_bom_is_skipped() {
        assert!(elements("[]").0.is_empty());
        assert_eq!(elements("\u{FEFF}[1]").0, ["1"]);
    }

    #[test]
    fn elements_know_the_line_they_start_on() {
        let mut s = ArrayScanner::new("[\n {\"a\":\n1},\n {}\n]".as_bytes(), u64::MAX);
        assert_eq!(s.next_element().unwrap().unwrap().line, 2);
        assert_eq!(s.next_element().unwrap().unwrap().line, 4);
        assert!(s.next_element().unwrap().is_none());
    }

    #[test]
    fn structural_problems_stop_the_scan() {
        assert!(matches!(
            elements("{\"a\": 1}").1,
            Some(ScanError::NotAnArray { found: Some(b'{') })
        ));
        assert!(matches!(
            elements("").1,
            Some(ScanError::NotAnArray { found: None })
        ));
        let (els, err) = elements("[1, {\"a\": 2");
        assert_eq!(els, ["1"]);
        assert!(matches!(err, Some(ScanError::Malformed(m)) if m.contains("truncated")));
        assert!(matches!(elements("[1] x").1, Some(ScanError::Malformed(_))));
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            // Strings heavy in the characters a scanner could trip on.
            "[\\[\\]{}\",\\\\ a\n\u{e9}]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-z\\[\\]\",]{0,5}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever the elements hold, compact or pretty-printed, each comes back whole.
        #[test]
        fn elements_round_trip(values in prop::collection::vec(json_value(), 0..8), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&values).unwrap()
            } else {
                serde_json::to_string(&values).unwrap()
            };
            let mut scanner = ArrayScanner::new(text.as_bytes(), u64::MAX);
            let mut back = Vec::new();
            while let Some(element) = scanner.next_element().unwrap() {
                back.push(serde_json::from_slice::<serde_json::Value>(&element.bytes).unwrap());
            }
            prop_assert_eq!(back, values);
        }
    }

    #[test]
    fn a_broken_element_does_not_derail_the_next() {
        let (els, err) = elements("[{\"a\" 1}, {\"b\": 2}]");
        assert!(err.is_none());
        assert_eq!(els, ["{\"a\" 1}", "{\"b\": 2}"]);
        // Mismatched brackets close back to their opener instead of unbalancing the scan.
        let (els, err) = elements("[{\"a\": [}, 2, {\"b\": 1]");
        assert!(err.is_none());
        assert_eq!(els, ["{\"a\": [}", "2", "{\"b\": 1"]);
    }
}

//! Where a source file's text is prose — a comment or a string literal — by its language's
//! lexical rules, so that a name written there is not taken for a use of a symbol.
//!
//! The scan is conservative: wherever it is unsure, the text counts as code (a name there
//! still counts as a use). Code inside a literal stays code: Python f-strings' `{…}`,
//! JavaScript template literals' `${…}`. A single-line string that reaches the end of its
//! line without closing ends there, so a quote the scan misreads cannot turn the rest of a
//! file into prose. Not recognised (so code): JavaScript regular expression literals, C++ raw
//! strings, C preprocessor specifics.

use std::ops::Range;

use crate::imports::Lang;

/// The byte ranges of `text` that are comments or string literals, in order, not overlapping.
pub fn ranges(lang: Lang, text: &str) -> Vec<Range<usize>> {
    let mut scan = Scan {
        text: text.as_bytes(),
        at: 0,
        out: Vec::new(),
        lang,
    };
    scan.code(None);
    scan.out
}

/// Whether byte `at` lies in one of `ranges` (as [`ranges`] returns them).
pub fn contains(ranges: &[Range<usize>], at: usize) -> bool {
    let i = ranges.partition_point(|r| r.end <= at);
    ranges.get(i).is_some_and(|r| r.start <= at)
}

struct Scan<'a> {
    text: &'a [u8],
    at: usize,
    out: Vec<Range<usize>>,
    lang: Lang,
}

impl Scan<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.text.get(self.at + ahead).copied()
    }

    fn starts(&self, s: &str) -> bool {
        self.text[self.at..].starts_with(s.as_bytes())
    }

    fn prose(&mut self, range: Range<usize>) {
        if range.start < range.end {
            self.out.push(range);
        }
    }

    /// Code until the end, or until the `}` that closes an interpolation (`close`).
    fn code(&mut self, close: Option<u8>) {
        let mut depth = 0usize;
        while let Some(c) = self.peek(0) {
            match c {
                b'{' if close.is_some() => {
                    depth += 1;
                    self.at += 1;
                }
                b'}' if close.is_some() => {
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                    self.at += 1;
                }
                _ if self.comment() || self.string() => {}
                _ => self.at += 1,
            }
        }
    }

    /// A comment starting here: recorded and skipped.
    fn comment(&mut self) -> bool {
        let start = self.at;
        match self.lang {
            Lang::Python => {
                if self.peek(0) != Some(b'#') {
                    return false;
                }
                self.skip_line();
            }
            _ => {
                if self.starts("//") {
                    self.skip_line();
                } else if self.starts("/*") {
                    self.block_comment();
                } else {
                    return false;
                }
            }
        }
        self.prose(start..self.at);
        true
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek(0) {
            if c == b'\n' {
                return;
            }
            self.at += 1;
        }
    }

    /// `/* … */`, nested in Rust.
    fn block_comment(&mut self) {
        self.at += 2;
        let mut depth = 1;
        while self.at < self.text.len() {
            if self.starts("*/") {
                self.at += 2;
                depth -= 1;
                if depth == 0 {
                    return;
                }
            } else if self.lang == Lang::Rust && self.starts("/*") {
                self.at += 2;
                depth += 1;
            } else {
                self.at += 1;
            }
        }
    }

    /// A string (or character) literal starting here: recorded and skipped, its code parts
    /// scanned as code.
    fn string(&mut self) -> bool {
        match self.lang {
            Lang::Python => self.python_string(),
            Lang::Rust => self.rust_string(),
            Lang::Script => match self.peek(0) {
                Some(q @ (b'"' | b'\'')) => self.quoted(q, false),
                Some(b'`') => self.template(),
                _ => false,
            },
            Lang::Go => match self.peek(0) {
                Some(q @ (b'"' | b'\'')) => self.quoted(q, false),
                Some(b'`') => self.raw_until("`", 1),
                _ => false,
            },
            Lang::C => match self.peek(0) {
                Some(q @ (b'"' | b'\'')) => self.quoted(q, false),
                _ => false,
            },
        }
    }

    /// `q … q` with backslash escapes; multi-line only when `multiline`.
    fn quoted(&mut self, q: u8, multiline: bool) -> bool {
        let start = self.at;
        self.at += 1;
        while let Some(c) = self.peek(0) {
            match c {
                b'\\' => self.at += 2,
                b'\n' if !multiline => break,
                _ if c == q => {
                    self.at += 1;
                    break;
                }
                _ => self.at += 1,
            }
        }
        self.at = self.at.min(self.text.len());
        self.prose(start..self.at);
        true
    }

    /// Raw text from here (after `open` bytes) to `end`, no escapes.
    fn raw_until(&mut self, end: &str, open: usize) -> bool {
        let start = self.at;
        self.at += open;
        while self.at < self.text.len() && !self.starts(end) {
            self.at += 1;
        }
        self.at = (self.at + end.len()).min(self.text.len());
        self.prose(start..self.at);
        true
    }

    /// A JavaScript template literal: prose, but `${…}` is code.
    fn template(&mut self) -> bool {
        let mut start = self.at;
        self.at += 1;
        while let Some(c) = self.peek(0) {
            match c {
                b'\\' => self.at += 2,
                b'`' => {
                    self.at += 1;
                    break;
                }
                b'$' if self.peek(1) == Some(b'{') => {
                    self.at += 2;
                    self.prose(start..self.at);
                    self.code(Some(b'}'));
                    start = self.at;
                    self.at += 1; // the closing `}`
                }
                _ => self.at += 1,
            }
        }
        self.at = self.at.min(self.text.len());
        self.prose(start..self.at);
        true
    }

    /// Python: an optional prefix (`r`, `b`, `f`, `rb`, `fr`…), then `'`, `"`, `'''` or
    /// `"""`. In an f-string, `{…}` is code (`{{` is a brace).
    fn python_string(&mut self) -> bool {
        let mut prefix = 0;
        while prefix < 2 && self.peek(prefix).is_some_and(|c| b"rRbBuUfF".contains(&c)) {
            prefix += 1;
        }
        let Some(q @ (b'"' | b'\'')) = self.peek(prefix) else {
            return false;
        };
        // Prefix letters at the end of a longer name (`bar"`) are not a prefix.
        if prefix > 0 && self.at > 0 && is_ident(self.text[self.at - 1]) {
            return false;
        }
        let formatted = self.text[self.at..self.at + prefix]
            .iter()
            .any(|c| matches!(c, b'f' | b'F'));
        let triple = self.peek(prefix + 1) == Some(q) && self.peek(prefix + 2) == Some(q);
        let mut start = self.at;
        self.at += prefix + if triple { 3 } else { 1 };
        while let Some(c) = self.peek(0) {
            match c {
                b'\\' => self.at += 2,
                b'\n' if !triple => break,
                b'{' if formatted && self.peek(1) == Some(b'{') => self.at += 2,
                b'{' if formatted => {
                    self.at += 1;
                    self.prose(start..self.at);
                    self.code(Some(b'}'));
                    start = self.at;
                    self.at += 1;
                }
                _ if c == q
                    && (!triple || (self.peek(1) == Some(q) && self.peek(2) == Some(q))) =>
                {
                    self.at += if triple { 3 } else { 1 };
                    break;
                }
                _ => self.at += 1,
            }
        }
        self.at = self.at.min(self.text.len());
        self.prose(start..self.at);
        true
    }

    /// Rust: `"…"` (multi-line), `b"…"`, raw `r#"…"#`, and `'c'` / `'\n'` character literals
    /// (a `'` that starts neither is a lifetime or a label: code).
    fn rust_string(&mut self) -> bool {
        // `b`, `c` and `r` are prefixes only at the start of a token.
        let token_start = self.at == 0 || !is_ident(self.text[self.at - 1]);
        let prefix = usize::from(token_start && matches!(self.peek(0), Some(b'b' | b'c')));
        if token_start && self.peek(prefix) == Some(b'r') {
            let hashes = self.text[self.at + prefix + 1..]
                .iter()
                .take_while(|c| **c == b'#')
                .count();
            if self.peek(prefix + 1 + hashes) == Some(b'"') {
                let end = format!("\"{}", "#".repeat(hashes));
                return self.raw_until(&end, prefix + 2 + hashes);
            }
        }
        match self.peek(prefix) {
            Some(b'"') => {
                self.at += prefix;
                let start = self.at - prefix;
                self.quoted(b'"', true);
                // Include the prefix in the recorded range.
                if let Some(last) = self.out.last_mut() {
                    last.start = start;
                }
                true
            }
            Some(b'\'') if prefix == 0 => {
                let is_char = match (self.peek(1), self.peek(2)) {
                    (Some(b'\\'), _) => true,
                    (Some(_), Some(b'\'')) => true,
                    // A multi-byte character: `'é'`.
                    (Some(c), _) if c >= 0x80 => {
                        let rest = &self.text[self.at + 1..];
                        std::str::from_utf8(&rest[..rest.len().min(5)])
                            .or_else(|e| std::str::from_utf8(&rest[..e.valid_up_to()]))
                            .ok()
                            .and_then(|s| s.chars().next())
                            .is_some_and(|ch| rest.get(ch.len_utf8()) == Some(&b'\''))
                    }
                    _ => false,
                };
                is_char && self.quoted(b'\'', false)
            }
            _ => false,
        }
    }
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prose parts of `text`, as strings.
    fn prose(lang: Lang, text: &str) -> Vec<&str> {
        ranges(lang, text).into_iter().map(|r| &text[r]).collect()
    }

    /// Whether each occurrence of `word` in `text` is prose, in order.
    fn where_is(lang: Lang, text: &str, word: &str) -> Vec<bool> {
        let found = ranges(lang, text);
        text.match_indices(word)
            .map(|(at, _)| contains(&found, at))
            .collect()
    }

    #[test]
    fn python_comments_strings_and_f_string_code() {
        let text = "x = Parse(a)  # see Parse\ns = 'Parse' + \"\"\"\nParse\n\"\"\"\nf\"{Parse(b)} Parse {{Parse}}\"\nr'\\' Parse'\n";
        assert_eq!(
            where_is(Lang::Python, text, "Parse"),
            [false, true, true, true, false, true, true, true]
        );
    }

    #[test]
    fn an_unclosed_single_line_string_ends_at_its_line() {
        let text = "s = 'it's\nParse(x)\n";
        assert_eq!(where_is(Lang::Python, text, "Parse"), [false]);
        let text = "let s = \"oops\nParse(x);\n";
        assert_eq!(where_is(Lang::Script, text, "Parse"), [false]);
    }

    #[test]
    fn c_like_comments_and_strings() {
        let text = "/* Parse\n */ Parse(); // Parse\nchar *s = \"a \\\" Parse\"; char c = '\\'';\nParse();";
        assert_eq!(
            where_is(Lang::C, text, "Parse"),
            [true, false, true, true, false]
        );
        assert_eq!(prose(Lang::C, "a('x') b"), ["'x'"]);
    }

    #[test]
    fn go_raw_strings_and_runes() {
        let text = "panic(`uuid: Parse(\n`) // see Parse\nParse(r) ; c := '`'\nParse(s)";
        assert_eq!(
            where_is(Lang::Go, text, "Parse"),
            [true, true, false, false]
        );
    }

    #[test]
    fn script_templates_keep_their_interpolations_as_code() {
        let text = "const a = `Parse ${Parse(x, {k: 1})} Parse`; Parse()";
        assert_eq!(
            where_is(Lang::Script, text, "Parse"),
            [true, false, true, false]
        );
    }

    #[test]
    fn rust_raw_strings_chars_lifetimes_and_nested_comments() {
        let text = "fn f<'a>(x: &'a str) { Parse(x); } /* a /* Parse */ Parse */\nlet s = r#\"Parse \"quoted\"\"#; let c = '\"'; Parse(); let b = b\"Parse\";";
        assert_eq!(
            where_is(Lang::Rust, text, "Parse"),
            [false, true, true, true, false, true]
        );
        // A lifetime does not open a literal that would swallow the code after it.
        assert_eq!(
            where_is(Lang::Rust, "impl<'a> Parse<'a> for X {}", "Parse"),
            [false]
        );
    }
}

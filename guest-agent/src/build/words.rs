//! Docker's word processing: quotes and `$VAR` / `${VAR:-default}` /
//! `${VAR:+alt}` substitution, in one pass.
//!
//! This follows BuildKit's shell lexer (`frontend/dockerfile/shell/lex.go`):
//!
//! - single quotes keep everything literally (no escapes inside);
//! - double quotes allow `$` substitution, and the escape character
//!   escapes only `"`, `$` and itself there (otherwise it stays);
//! - outside quotes the escape character makes the next character
//!   literal (an escaped space does not split words);
//! - `$NAME`, `${NAME}`, `${NAME:-w}`, `${NAME-w}`, `${NAME:+w}`,
//!   `${NAME+w}`, `${NAME:?msg}`, `${NAME?msg}`, `${NAME#glob}`,
//!   `${NAME##glob}`, `${NAME%glob}`, `${NAME%%glob}`, `${NAME/glob/r}` and
//!   `${NAME//glob/r}`; unknown names are empty;
//! - [`expand_words`] splits on unquoted whitespace. As in BuildKit's
//!   `ProcessWords`, the value of an *unquoted* substitution is split too
//!   (`A="x y"`, `EXPOSE $A` gives two words) while a quoted one (`"$A"`)
//!   stays one word. A word that is only `""` produces no word.

/// Expands one raw word: removes quotes, substitutes variables that
/// `lookup` knows (unknown ones are empty).
pub fn expand(
    raw: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<String, String> {
    Ok(run(raw, lookup, escape)?.0)
}

/// Expands raw text and splits it into words on unquoted whitespace.
pub fn expand_words(
    raw: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<String>, String> {
    Ok(run(raw, lookup, escape)?.1)
}

fn run(
    raw: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<(String, Vec<String>), String> {
    let mut lexer = Lexer {
        chars: raw.chars().collect(),
        pos: 0,
        escape,
        lookup,
    };
    lexer
        .process(None, false)
        .map_err(|e| format!("{e} in `{raw}`"))
}

/// Words being collected, BuildKit's way.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes until `stop` (consumed) or the end; `raw_escapes` keeps
    /// escape characters in the output (used for glob patterns).
    fn process(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match c {
                '$' => {
                    let v = self.dollar()?;
                    result.push_str(&v);
                    words.add_string(&v);
                }
                '\'' => {
                    let v = self.single_quote()?;
                    result.push_str(&v);
                    words.add_raw_string(&v);
                }
                '"' => {
                    let v = self.double_quote(raw_escapes)?;
                    result.push_str(&v);
                    words.add_raw_string(&v);
                }
                '<' if self.chars.get(self.pos + 1) == Some(&'<') => {
                    // `<< EOF` stays one word, as BuildKit keeps it.
                    self.pos += 2;
                    let mut v = String::from("<<");
                    while let Some(s @ (' ' | '\t' | '\r')) = self.peek() {
                        v.push(s);
                        self.pos += 1;
                    }
                    result.push_str(&v);
                    words.add_raw_string(&v);
                }
                _ => {
                    self.pos += 1;
                    if c == self.escape {
                        if raw_escapes {
                            words.add_raw_char(c);
                            result.push(c);
                        }
                        let Some(n) = self.next() else { break };
                        words.add_raw_char(n);
                        result.push(n);
                    } else {
                        words.add_char(c);
                        result.push(c);
                    }
                }
            }
        }
        match stop {
            Some(s) => Err(format!(
                "unexpected end of text while looking for a matching '{s}'"
            )),
            None => Ok((result, words.finish())),
        }
    }

    fn single_quote(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.next() {
                None => return Err("missing closing single quote (')".into()),
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self, raw_escapes: bool) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err("missing closing double quote (\")".into()),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.pos += 1;
                    let mut c = c;
                    if c == self.escape {
                        if raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                c = n;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')) => {
                self.pos += 1;
                return c.to_string();
            }
            _ => {}
        }
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            name.push(c);
            self.pos += 1;
        }
        name
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok((self.lookup)(&name).unwrap_or_default());
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("missing '}' after '${'".into()),
            Some('{' | '}' | ':') => return Err("bad substitution: '${' needs a name".into()),
            _ => {}
        }
        let name = self.name();
        let missing = || format!("missing '}}' in ${{{name}");
        let mut op = match self.next() {
            None => return Err(missing()),
            Some('}') => return Ok((self.lookup)(&name).unwrap_or_default()),
            Some(c) => c,
        };
        let mut null_is_unset = false;
        if op == ':' {
            null_is_unset = true;
            op = self.next().ok_or_else(missing)?;
        }
        let modifier = if null_is_unset {
            format!(":{op}")
        } else {
            op.to_string()
        };
        match op {
            '+' | '-' | '?' | '#' | '%' => {
                let pattern = op == '#' || op == '%';
                if null_is_unset && pattern {
                    return Err(format!("unsupported modifier ({modifier}) in substitution"));
                }
                let word = self.nested('}', pattern, &missing)?;
                let value = (self.lookup)(&name);
                let empty = value
                    .as_deref()
                    .is_none_or(|v| null_is_unset && v.is_empty());
                match op {
                    '-' => Ok(if empty {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if empty { String::new() } else { word }),
                    '?' if empty => Err(if !word.is_empty() {
                        format!("{name}: {word}")
                    } else if value.is_none() {
                        format!("{name} is not allowed to be unset")
                    } else {
                        format!("{name} is not allowed to be empty")
                    }),
                    '?' => Ok(value.unwrap_or_default()),
                    _ => {
                        let value: Vec<char> = value.unwrap_or_default().chars().collect();
                        let (greedy, pat) = match word.strip_prefix(op) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let pat: Vec<char> = pat.chars().collect();
                        Ok(trim(&value, &pat, greedy, op == '#'))
                    }
                }
            }
            '/' if !null_is_unset => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pat = self.nested('/', true, &|| format!("missing '/' in ${{{name}/"))?;
                let rep = self.nested('}', true, &missing)?;
                let value: Vec<char> = (self.lookup)(&name).unwrap_or_default().chars().collect();
                Ok(replace(&value, &pat.chars().collect::<Vec<_>>(), &rep, all))
            }
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }

    fn nested(
        &mut self,
        stop: char,
        raw_escapes: bool,
        missing: &dyn Fn() -> String,
    ) -> Result<String, String> {
        match self.process(Some(stop), raw_escapes) {
            Ok((w, _)) => Ok(w),
            Err(_) if self.peek().is_none() => Err(missing()),
            Err(e) => Err(e),
        }
    }
}

/// Whether shell glob `pat` (`*`, `?`, `\x`) matches all of `text`.
fn glob(pat: &[char], text: &[char]) -> bool {
    match pat.first() {
        None => text.is_empty(),
        Some('*') => (0..=text.len()).any(|i| glob(&pat[1..], &text[i..])),
        Some('?') => !text.is_empty() && glob(&pat[1..], &text[1..]),
        Some('\\') if pat.len() > 1 => text.first() == Some(&pat[1]) && glob(&pat[2..], &text[1..]),
        Some(c) => text.first() == Some(c) && glob(&pat[1..], &text[1..]),
    }
}

/// `${V#p}`, `${V##p}` (prefix) and `${V%p}`, `${V%%p}` (suffix).
fn trim(value: &[char], pat: &[char], greedy: bool, prefix: bool) -> String {
    let n = value.len();
    let mut lens: Vec<usize> = (0..=n).collect();
    if greedy {
        lens.reverse();
    }
    for len in lens {
        if prefix && glob(pat, &value[..len]) {
            return value[len..].iter().collect();
        }
        if !prefix && glob(pat, &value[n - len..]) {
            return value[..n - len].iter().collect();
        }
    }
    value.iter().collect()
}

/// `${V/p/r}` (first match) and `${V//p/r}` (all): leftmost, longest.
fn replace(value: &[char], pat: &[char], rep: &str, all: bool) -> String {
    let mut out = String::new();
    let mut i = 0;
    let mut done = false;
    while i <= value.len() {
        let found = if done {
            None
        } else {
            (i..=value.len())
                .rev()
                .find(|&end| glob(pat, &value[i..end]))
        };
        if let Some(end) = found {
            out.push_str(rep);
            done = !all;
            if end > i {
                i = end;
                continue;
            }
        }
        if let Some(c) = value.get(i) {
            out.push(*c);
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("a".into()),
            "E" => Some(String::new()),
            "SP" => Some("x  y".into()),
            "P" => Some("/usr/local/bin".into()),
            _ => None,
        }
    }
    fn x(raw: &str) -> String {
        expand(raw, &env, '\\').unwrap()
    }
    fn w(raw: &str) -> Vec<String> {
        expand_words(raw, &env, '\\').unwrap()
    }

    #[test]
    fn plain_and_simple_variables() {
        assert_eq!(x("hello"), "hello");
        assert_eq!(x("$A"), "a");
        assert_eq!(x("${A}b"), "ab");
        assert_eq!(x("$Ab"), "");
        assert_eq!(x("$NOPE-x"), "-x");
        assert_eq!(x("cost $"), "cost $");
        assert_eq!(x("$1x"), "x");
    }

    #[test]
    fn defaults_and_alternatives() {
        assert_eq!(x("${A:-x}"), "a");
        assert_eq!(x("${NOPE:-x}"), "x");
        assert_eq!(x("${E:-x}"), "x");
        assert_eq!(x("${E-x}"), "");
        assert_eq!(x("${NOPE-x}"), "x");
        assert_eq!(x("${A:+y}"), "y");
        assert_eq!(x("${E:+y}"), "");
        assert_eq!(x("${E+y}"), "y");
        assert_eq!(x("${NOPE+y}"), "");
        assert_eq!(x("${NOPE:-$A$A}"), "aa");
        assert_eq!(x("${NOPE:-\"q u\"}"), "q u");
    }

    #[test]
    fn required_variables() {
        assert_eq!(x("${A:?must}"), "a");
        assert_eq!(
            expand("${NOPE?}", &env, '\\').unwrap_err(),
            "NOPE is not allowed to be unset in `${NOPE?}`"
        );
        assert!(expand("${E:?set E}", &env, '\\')
            .unwrap_err()
            .starts_with("E: set E"));
        assert_eq!(x("${E?}"), "");
    }

    #[test]
    fn patterns() {
        assert_eq!(x("${P#*/}"), "usr/local/bin");
        assert_eq!(x("${P##*/}"), "bin");
        assert_eq!(x("${P%/*}"), "/usr/local");
        assert_eq!(x("${P%%/l*}"), "/usr");
        assert_eq!(x("${P/local/opt}"), "/usr/opt/bin");
        assert_eq!(x("${P//\\//:}"), ":usr:local:bin");
        assert_eq!(x("${P/?/_}"), "_usr/local/bin");
        assert_eq!(x("${NOPE#x}"), "");
    }

    #[test]
    fn quotes() {
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A\""), "a");
        assert_eq!(x("\"it's\""), "it's");
        assert_eq!(x("'say \"hi\"'"), "say \"hi\"");
        assert_eq!(x("\"a\\\"b\""), "a\"b");
        assert_eq!(x("\"a\\nb\""), "a\\nb");
        assert_eq!(x("pre\"$A b\"post"), "prea bpost");
        assert_eq!(x("\"\""), "");
    }

    #[test]
    fn escapes() {
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("\\\"q\\\""), "\"q\"");
        assert_eq!(x("a\\ b"), "a b");
        assert_eq!(x("end\\"), "end");
        assert_eq!(expand("`$A", &env, '`').unwrap(), "$A");
        assert_eq!(expand("\\$A", &env, '`').unwrap(), "\\a");
        assert_eq!(expand("\"`\"\"", &env, '`').unwrap(), "\"");
    }

    #[test]
    fn words_split_on_unquoted_whitespace() {
        assert_eq!(w("a b\tc"), ["a", "b", "c"]);
        assert_eq!(w("  a  "), ["a"]);
        assert_eq!(w("\"a b\" 'c d'"), ["a b", "c d"]);
        assert_eq!(w("a\\ b c"), ["a b", "c"]);
        assert_eq!(w("x\"$SP\""), ["xx  y"]);
        assert_eq!(w("$SP"), ["x", "y"]);
        assert_eq!(w("80/tcp ${NOPE:-443}"), ["80/tcp", "443"]);
        assert_eq!(w("\"\" a"), ["a"]);
        assert!(w("").is_empty());
        // ProcessWord keeps the spaces between words.
        assert_eq!(x("a  b"), "a  b");
    }

    #[test]
    fn errors() {
        let e = |raw: &str| expand(raw, &env, '\\').unwrap_err();
        assert_eq!(e("${A"), "missing '}' in ${A in `${A`");
        assert_eq!(e("${A:-x"), "missing '}' in ${A in `${A:-x`");
        assert!(e("${").starts_with("missing '}'"));
        assert!(e("${}").starts_with("bad substitution"));
        assert!(e("${:x}").starts_with("bad substitution"));
        assert!(e("${A:#x}").starts_with("unsupported modifier (:#)"));
        assert!(e("${A!}").starts_with("unsupported modifier (!)"));
        assert!(e("'open").starts_with("missing closing single quote"));
        assert!(e("\"open").starts_with("missing closing double quote"));
    }

    #[test]
    fn never_panics() {
        for s in [
            "${", "${A:", "${A/", "${A//x", "\\", "\"\\", "$", "${#}", "${@:-}", "ü${ü}", "<<",
        ] {
            let _ = expand(s, &env, '\\');
            let _ = expand_words(s, &env, '`');
        }
        assert_eq!(x("${P/*/}"), "");
    }
}

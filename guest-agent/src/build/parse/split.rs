//! Splitting an instruction's arguments: leading `--flags`, raw words,
//! JSON arrays and heredoc words.

/// A `--name[=value]` flag (value with its quotes removed).
pub(super) type Flag = (String, Option<String>);

/// Takes the `--flags` at the start of `rest` (as BuildKit does for every
/// instruction: quotes are removed and `\` escapes the next character; a
/// lone `--` ends the flags) and returns them with what follows.
pub(super) fn flags(rest: &str) -> (Vec<Flag>, &str) {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let tail = &rest[pos..];
        let trimmed = tail.trim_start();
        pos += tail.len() - trimmed.len();
        if !trimmed.starts_with("--") {
            return (out, &rest[pos..]);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut chars = trimmed.char_indices();
        let mut end = trimmed.len();
        while let Some((i, c)) = chars.next() {
            match quote {
                None if c.is_whitespace() => {
                    end = i;
                    break;
                }
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if let Some((_, n)) = chars.next() {
                        word.push(n);
                    }
                }
                _ => word.push(c),
            }
        }
        pos += end;
        if word == "--" {
            return (out, rest[pos..].trim_start());
        }
        let body = &word[2..];
        out.push(match body.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        });
    }
}

/// Splits on whitespace outside quotes, keeping quotes and escapes as
/// written (the words stay raw for [`crate::build::words`]). `<<` followed
/// by blanks stays in its word, as in BuildKit's lexer.
pub(super) fn raw_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                word.push(c);
                if c == q {
                    quote = None;
                } else if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
            }
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            None => {
                word.push(c);
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else if c == escape {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                } else if c == '<' && chars.peek() == Some(&'<') {
                    word.push('<');
                    chars.next();
                    while let Some(&b @ (' ' | '\t')) = chars.peek() {
                        word.push(b);
                        chars.next();
                    }
                }
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// The JSON (exec) form: `["a", "b"]`, strings only. Anything else is
/// shell form, as in Docker.
pub(super) fn json_array(args: &str) -> Option<Vec<String>> {
    let args = args.trim();
    if !args.starts_with('[') {
        return None;
    }
    serde_json::from_str(args).ok()
}

/// A heredoc word (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`): its name,
/// whether tabs are stripped (`<<-`) and whether the body expands.
pub(super) fn heredoc_word(word: &str) -> Option<(String, bool, bool)> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.contains(['<', '$']) {
        return None;
    }
    let none = |_: &str| None;
    let mut names = crate::build::words::expand_words(rest, &none, '\\').ok()?;
    if names.len() != 1 {
        return None;
    }
    let name = names.remove(0);
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    Some((name.clone(), chomp, quotes(&name) == quotes(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, v: Option<&str>) -> Flag {
        (name.into(), v.map(String::from))
    }

    #[test]
    fn flags_are_taken_from_the_front() {
        let (fl, rest) = flags("--mount=type=cache,target=/x --network=none make all");
        assert_eq!(
            fl,
            [
                f("mount", Some("type=cache,target=/x")),
                f("network", Some("none"))
            ]
        );
        assert_eq!(rest, "make all");
        let (fl, rest) = flags("  --link --from=\"a b\" src dst");
        assert_eq!(fl, [f("link", None), f("from", Some("a b"))]);
        assert_eq!(rest, "src dst");
        let (fl, rest) = flags("-- --notaflag x");
        assert!(fl.is_empty());
        assert_eq!(rest, "--notaflag x");
        assert_eq!(flags("--a"), (vec![f("a", None)], ""));
        assert_eq!(flags("echo --x").1, "echo --x");
    }

    #[test]
    fn raw_words_keep_quotes() {
        assert_eq!(
            raw_words(r#"a "b c" 'd e' f\ g"#, '\\'),
            ["a", "\"b c\"", "'d e'", "f\\ g"]
        );
        assert_eq!(raw_words("k=\"a \\\" b\" x", '\\'), ["k=\"a \\\" b\"", "x"]);
        assert_eq!(raw_words("cat << EOF x", '\\'), ["cat", "<< EOF", "x"]);
        assert_eq!(raw_words("  ", '\\'), Vec::<String>::new());
        assert_eq!(raw_words("'open end", '\\'), ["'open end"]);
    }

    #[test]
    fn json() {
        assert_eq!(json_array(r#" ["a", "b c"] "#).unwrap(), ["a", "b c"]);
        assert_eq!(json_array("[]").unwrap(), Vec::<String>::new());
        assert_eq!(json_array("[a, b]"), None);
        assert_eq!(json_array("[1]"), None);
        assert_eq!(json_array("echo [x]"), None);
    }

    #[test]
    fn heredoc_words() {
        assert_eq!(heredoc_word("<<EOF"), Some(("EOF".into(), false, true)));
        assert_eq!(heredoc_word("<<-EOT"), Some(("EOT".into(), true, true)));
        assert_eq!(
            heredoc_word("<<\"EOF\""),
            Some(("EOF".into(), false, false))
        );
        assert_eq!(heredoc_word("<<'E'"), Some(("E".into(), false, false)));
        assert_eq!(
            heredoc_word("3<< a.txt"),
            Some(("a.txt".into(), false, true))
        );
        assert_eq!(heredoc_word("<<"), None);
        assert_eq!(heredoc_word("a<<EOF"), None);
        assert_eq!(heredoc_word("<<<EOF"), None);
        assert_eq!(heredoc_word("file"), None);
    }
}

//! `.dockerignore` as Docker reads it: one pattern a line (`#` comments,
//! blank lines skipped), Go `filepath.Match` syntax plus `**` for any
//! number of directories, a leading `/` or `./` meaning the context's
//! root, `!` for an exception, and the last matching pattern winning. A
//! pattern that matches a directory matches everything under it.
//!
//! Patterns are translated to regular expressions exactly as Docker's
//! `moby/patternmatcher` does (`*` → `[^/]*`, `?` → `[^/]`, `**/` →
//! `(.*/)?`, a final `**` → `.*`), so the `regex` crate does the matching.

use regex::Regex;

use crate::error::{Error, ErrorKind, Result};

/// One parsed pattern.
#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern text (without `!`).
    text: String,
    /// An exception (`!pattern`): a match includes the path again.
    exception: bool,
    regex: Regex,
}

/// The patterns of a `.dockerignore` file, in order.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

impl Matcher {
    /// Parses a `.dockerignore` file's text.
    pub fn parse(text: &str) -> Result<Matcher> {
        let mut m = Matcher::default();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if !line.is_empty() {
                m.add(line)?;
            }
        }
        Ok(m)
    }

    /// Adds one pattern (`!` first for an exception) after the others.
    pub fn add(&mut self, pattern: &str) -> Result<()> {
        let (exception, body) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, pattern),
        };
        if exception && body.is_empty() {
            return Err(bad(pattern, "illegal exclusion pattern: \"!\""));
        }
        let mut text = clean(body);
        if text.len() > 1 && text.starts_with('/') {
            text.remove(0);
        }
        let regex =
            Regex::new(&translate(&text)).map_err(|_| bad(pattern, "syntax error in pattern"))?;
        self.patterns.push(Pattern {
            text,
            exception,
            regex,
        });
        Ok(())
    }

    /// Whether a path (relative to the context, `/`-separated) is left
    /// out: the last pattern that matches it or one of its parent
    /// directories decides.
    pub fn excluded(&self, path: &str) -> bool {
        let mut matched = false;
        for p in &self.patterns {
            // An exception can only change an excluded path, a pattern
            // only an included one.
            if p.exception != matched {
                continue;
            }
            let hit = p.regex.is_match(path)
                || path
                    .match_indices('/')
                    .any(|(i, _)| p.regex.is_match(&path[..i]));
            if hit {
                matched = !p.exception;
            }
        }
        matched
    }

    /// Whether an excluded directory must still be walked because an
    /// exception may match something inside it (Docker's test: an
    /// exception that starts with the directory's path; also any
    /// exception with `**`, which can match at any depth).
    pub fn may_include_under(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|p| p.exception)
            .any(|p| format!("{}/", p.text).starts_with(&prefix) || p.text.contains("**"))
    }

    /// True when there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

fn bad(pattern: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("failed to parse .dockerignore pattern {pattern:?}: {why}"),
    )
}

/// Go's `filepath.Clean` on a `/`-separated path.
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => match out.last() {
                Some(&l) if l != ".." => {
                    out.pop();
                }
                _ if rooted => {}
                _ => out.push(".."),
            },
            _ => out.push(part),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// A pattern as a regular expression, as `moby/patternmatcher` builds it.
fn translate(pattern: &str) -> String {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => match chars.next() {
                Some(n) => re.push_str(&regex::escape(&n.to_string())),
                None => re.push_str(r"\\"),
            },
            '[' => {
                // A character class, copied through (Go's `^` negation
                // is the regex's too); what Rust's classes treat as set
                // operators or nesting is escaped.
                re.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    re.push('^');
                }
                for n in chars.by_ref() {
                    match n {
                        ']' => break,
                        '\\' | '[' | '&' | '~' => {
                            re.push('\\');
                            re.push(n);
                        }
                        _ => re.push(n),
                    }
                }
                re.push(']');
            }
            _ => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Matcher {
        Matcher::parse(text).unwrap()
    }

    #[test]
    fn simple_patterns_and_parents() {
        let x = m("# comment\n\nnode_modules\n*.log\n/build\n./tmp/\n");
        assert!(x.excluded("node_modules"));
        assert!(x.excluded("node_modules/a/b.js"));
        assert!(x.excluded("debug.log"));
        assert!(!x.excluded("sub/debug.log"), "* does not cross /");
        assert!(x.excluded("build/out.o"));
        assert!(x.excluded("tmp/x"));
        assert!(!x.excluded("src/main.rs"));
        assert!(!x.excluded("buildx"));
    }

    #[test]
    fn double_star_matches_any_depth() {
        let x = m("**/*.tmp\ndocs/**\n");
        assert!(x.excluded("a.tmp"));
        assert!(x.excluded("a/b/c.tmp"));
        assert!(x.excluded("docs/a/b"));
        assert!(!x.excluded("docs"), "docs/** leaves the directory itself");
        assert!(!x.excluded("a/b.txt"));
        let all = m("**");
        assert!(all.excluded("anything/at/all"));
    }

    #[test]
    fn exceptions_and_last_match_wins() {
        let x = m("*.md\n!README.md\n");
        assert!(x.excluded("CHANGES.md"));
        assert!(!x.excluded("README.md"));
        let x = m("!README.md\n*.md\n");
        assert!(x.excluded("README.md"), "the later pattern wins");
        let x = m("dir\n!dir/keep\n");
        assert!(x.excluded("dir"));
        assert!(x.excluded("dir/other"));
        assert!(!x.excluded("dir/keep"));
        assert!(!x.excluded("dir/keep/inner"));
        assert!(x.may_include_under("dir"));
        assert!(!x.may_include_under("elsewhere"));
    }

    #[test]
    fn go_match_syntax() {
        let x = m("file?.txt\n[ab]*.c\n[^x]y\nlit\\*eral\n");
        assert!(x.excluded("file1.txt"));
        assert!(!x.excluded("file12.txt"));
        assert!(x.excluded("a1.c") && x.excluded("b.c"));
        assert!(!x.excluded("c.c"));
        assert!(x.excluded("zy") && !x.excluded("xy"));
        assert!(x.excluded("lit*eral") && !x.excluded("litteral"));
        assert!(m("a.b").excluded("a.b") && !m("a.b").excluded("axb"));
        assert!(Matcher::parse("!").is_err());
    }

    #[test]
    fn cleaning_like_go() {
        assert_eq!(clean("./a/../b/"), "b");
        assert_eq!(clean("/x/./y"), "/x/y");
        assert_eq!(clean("."), ".");
        assert_eq!(clean("../a"), "../a");
    }
}

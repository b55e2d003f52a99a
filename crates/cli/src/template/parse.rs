//! Parsing Go's text/template language into a tree: text, actions
//! (`{{pipeline}}`), `if`/`else if`/`else`, `range` (with `$i, $v :=`),
//! `with`, variables, parenthesised pipelines, `{{- -}}` trimming and
//! `{{/* comments */}}`. `define`, `template` and `block` are refused
//! with a sentence: Docker's format strings do not use them.

use super::TemplateError as Error;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Text copied as it is.
    Text(String),
    /// `{{pipeline}}`: its value is printed (unless it declares variables).
    Action(Pipe),
    /// `{{if p}}…{{else}}…{{end}}`.
    If(Pipe, Vec<Node>, Vec<Node>),
    /// `{{range p}}…{{else}}…{{end}}`.
    Range(Pipe, Vec<Node>, Vec<Node>),
    /// `{{with p}}…{{else}}…{{end}}`.
    With(Pipe, Vec<Node>, Vec<Node>),
}

/// Commands joined by `|`, maybe declaring variables (`$x :=`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    /// Declared variables, with their `$`.
    pub decl: Vec<String>,
    /// The commands; each one's value is the last argument of the next.
    pub cmds: Vec<Vec<Arg>>,
    /// The pipeline as written, for error messages.
    pub text: String,
}

/// One operand of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `.A.B` (empty: the dot itself).
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone is the data the template was given).
    Var(String, Vec<String>),
    /// A function's name.
    Func(String),
    /// A string, number, `true`/`false` or `nil`, as JSON.
    Lit(serde_json::Value),
    /// `(pipeline).A.B`.
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Lit(serde_json::Value),
    Open,
    Close(Vec<String>),
    Bar,
    Comma,
    Declare,
}

/// Splits `text` into text and action pieces, applying `{{-`/`-}}`.
fn chunks(text: &str) -> Result<Vec<(bool, String)>, Error> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let mut before = rest[..start].to_string();
        let mut inner = &rest[start + 2..];
        if let Some(s) = inner.strip_prefix("- ").or(inner.strip_prefix("-\t")) {
            before = before.trim_end().to_string();
            inner = s;
        }
        out.push((false, before));
        let end = find_close(inner)
            .ok_or_else(|| Error::new(format!("unclosed action in {text:?}: add }}}}")))?;
        let mut action = &inner[..end];
        let mut after = &inner[end + 2..];
        if let Some(a) = action.strip_suffix(" -").or(action.strip_suffix("\t-")) {
            action = a;
            after = after.trim_start();
        }
        let action = action.trim();
        if !(action.starts_with("/*") && action.ends_with("*/")) {
            out.push((true, action.to_string()));
        }
        rest = after;
    }
    out.push((false, rest.to_string()));
    Ok(out)
}

/// Where an action's `}}` is, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let (mut i, mut quote) = (0, None::<u8>);
    while i + 1 < b.len() || (i < b.len() && quote.is_some()) {
        match (quote, b[i]) {
            (Some(b'"'), b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (None, b'"') | (None, b'`') => quote = Some(b[i]),
            (None, b'}') if b[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Reads `.A.B` at the start of `s`: the names and the length read.
fn chain(s: &str) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut i = 0;
    while s[i..].starts_with('.') {
        let name: String = s[i + 1..].chars().take_while(|c| is_ident(*c)).collect();
        if name.is_empty() {
            break;
        }
        i += 1 + name.len();
        names.push(name);
    }
    (names, i)
}

fn lex(action: &str) -> Result<Vec<Tok>, Error> {
    let mut toks = Vec::new();
    let mut i = 0;
    let s = action;
    while i < s.len() {
        let rest = &s[i..];
        let c = rest.chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            i += c.len_utf8();
        } else if c == '"' {
            let mut out = String::new();
            let mut chars = rest[1..].char_indices();
            let mut end = None;
            while let Some((j, ch)) = chars.next() {
                match ch {
                    '"' => {
                        end = Some(j + 2);
                        break;
                    }
                    '\\' => match chars.next().map(|(_, e)| e) {
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some(other) => out.push(other),
                        None => {}
                    },
                    _ => out.push(ch),
                }
            }
            let end =
                end.ok_or_else(|| Error::new(format!("unterminated string in {{{{{s}}}}}")))?;
            toks.push(Tok::Lit(out.into()));
            i += end;
        } else if c == '`' {
            let end = rest[1..]
                .find('`')
                .ok_or_else(|| Error::new(format!("unterminated raw string in {{{{{s}}}}}")))?;
            toks.push(Tok::Lit(rest[1..1 + end].into()));
            i += end + 2;
        } else if c == '(' {
            toks.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            let (names, n) = chain(&rest[1..]);
            toks.push(Tok::Close(names));
            i += 1 + n;
        } else if c == '|' {
            toks.push(Tok::Bar);
            i += 1;
        } else if c == ',' {
            toks.push(Tok::Comma);
            i += 1;
        } else if rest.starts_with(":=") || (c == '=' && !rest.starts_with("==")) {
            toks.push(Tok::Declare);
            i += if c == ':' { 2 } else { 1 };
        } else if c == '.' {
            let (names, n) = chain(rest);
            toks.push(Tok::Field(names));
            i += n.max(1);
        } else if c == '$' {
            let name: String = rest[1..].chars().take_while(|c| is_ident(*c)).collect();
            let (names, n) = chain(&rest[1 + name.len()..]);
            toks.push(Tok::Var(format!("${name}"), names));
            i += 1 + name.len() + n;
        } else if c.is_ascii_digit()
            || (c == '-' && rest[1..].starts_with(|d: char| d.is_ascii_digit()))
        {
            let text: String = rest
                .chars()
                .enumerate()
                .take_while(|(k, d)| {
                    d.is_ascii_alphanumeric() || *d == '.' || (*k == 0 && *d == '-')
                })
                .map(|(_, d)| d)
                .collect();
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|_| Error::new(format!("bad number {text:?} in {{{{{s}}}}}")))?;
            toks.push(Tok::Lit(value));
            i += text.len();
        } else if is_ident(c) {
            let word: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            i += word.len();
            toks.push(match word.as_str() {
                "true" => Tok::Lit(true.into()),
                "false" => Tok::Lit(false.into()),
                "nil" => Tok::Lit(serde_json::Value::Null),
                _ => Tok::Ident(word),
            });
        } else {
            return Err(Error::new(format!("unexpected {c:?} in {{{{{s}}}}}")));
        }
    }
    Ok(toks)
}

/// Parses a pipeline from tokens, up to a `)` at depth 0 or the end.
fn pipe(toks: &[Tok], pos: &mut usize, text: &str) -> Result<Pipe, Error> {
    let mut decl = Vec::new();
    // `$x :=` or `$k, $v :=`.
    let mut look = *pos;
    let mut vars = Vec::new();
    while let Some(Tok::Var(name, f)) = toks.get(look) {
        if !f.is_empty() {
            break;
        }
        vars.push(name.clone());
        look += 1;
        match toks.get(look) {
            Some(Tok::Comma) => look += 1,
            Some(Tok::Declare) => {
                decl = vars;
                *pos = look + 1;
                break;
            }
            _ => break,
        }
    }
    let mut cmds = vec![Vec::new()];
    while let Some(t) = toks.get(*pos) {
        *pos += 1;
        let arg = match t {
            Tok::Bar => {
                cmds.push(Vec::new());
                continue;
            }
            Tok::Close(_) => {
                *pos -= 1;
                break;
            }
            Tok::Field(f) => Arg::Field(f.clone()),
            Tok::Var(v, f) => Arg::Var(v.clone(), f.clone()),
            Tok::Ident(name) => Arg::Func(name.clone()),
            Tok::Lit(v) => Arg::Lit(v.clone()),
            Tok::Open => {
                let inner = pipe(toks, pos, text)?;
                let Some(Tok::Close(names)) = toks.get(*pos) else {
                    return Err(Error::new(format!("unclosed ( in {{{{{text}}}}}")));
                };
                *pos += 1;
                Arg::Sub(Box::new(inner), names.clone())
            }
            Tok::Comma | Tok::Declare => {
                return Err(Error::new(format!("unexpected , or := in {{{{{text}}}}}")))
            }
        };
        cmds.last_mut().expect("one command").push(arg);
    }
    if cmds.iter().any(Vec::is_empty) {
        return Err(Error::new(format!("missing value in {{{{{text}}}}}")));
    }
    Ok(Pipe {
        decl,
        cmds,
        text: text.to_string(),
    })
}

fn whole_pipe(text: &str) -> Result<Pipe, Error> {
    let toks = lex(text)?;
    let mut pos = 0;
    let p = pipe(&toks, &mut pos, text)?;
    if pos != toks.len() {
        return Err(Error::new(format!("unexpected ) in {{{{{text}}}}}")));
    }
    Ok(p)
}

/// What ended a list of nodes.
enum Stop {
    Eof,
    End,
    Else,
    ElseIf(Pipe),
}

struct Parser {
    chunks: Vec<(bool, String)>,
    at: usize,
}

impl Parser {
    fn list(&mut self) -> Result<(Vec<Node>, Stop), Error> {
        let mut nodes = Vec::new();
        while self.at < self.chunks.len() {
            let (action, text) = self.chunks[self.at].clone();
            self.at += 1;
            if !action {
                if !text.is_empty() {
                    nodes.push(Node::Text(text));
                }
                continue;
            }
            let (word, rest) = match text.split_once(char::is_whitespace) {
                Some((w, r)) => (w, r.trim()),
                None => (text.as_str(), ""),
            };
            match word {
                "end" => return Ok((nodes, Stop::End)),
                "else" if rest.is_empty() => return Ok((nodes, Stop::Else)),
                "else" => match rest.strip_prefix("if ") {
                    Some(p) => return Ok((nodes, Stop::ElseIf(whole_pipe(p)?))),
                    None => return Err(Error::new(format!("unexpected {{{{{text}}}}}"))),
                },
                "if" => {
                    let p = whole_pipe(rest)?;
                    nodes.push(self.branch(p, Node::If)?);
                }
                "range" => {
                    let p = whole_pipe(rest)?;
                    nodes.push(self.branch(p, Node::Range)?);
                }
                "with" => {
                    let p = whole_pipe(rest)?;
                    nodes.push(self.branch(p, Node::With)?);
                }
                "define" | "template" | "block" => {
                    return Err(Error::new(format!(
                        "{{{{{word}}}}} is not supported in a format: write the template inline"
                    )))
                }
                _ => nodes.push(Node::Action(whole_pipe(&text)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    /// The body, `else` part and `end` of an if, range or with.
    fn branch(
        &mut self,
        p: Pipe,
        make: fn(Pipe, Vec<Node>, Vec<Node>) -> Node,
    ) -> Result<Node, Error> {
        let (body, end) = self.list()?;
        let els = match end {
            Stop::End => Vec::new(),
            Stop::Else => match self.list()? {
                (els, Stop::End) => els,
                _ => return Err(Error::new("missing {{end}} after {{else}}".into())),
            },
            // `else if` shares the `end` of the `if` it continues.
            Stop::ElseIf(q) => vec![self.branch(q, Node::If)?],
            Stop::Eof => {
                return Err(Error::new(format!(
                    "missing {{{{end}}}} for {{{{{}}}}}",
                    p.text
                )))
            }
        };
        Ok(make(p, body, els))
    }
}

/// Parses a whole template.
pub fn parse(text: &str) -> Result<Vec<Node>, Error> {
    let mut p = Parser {
        chunks: chunks(text)?,
        at: 0,
    };
    match p.list()? {
        (nodes, Stop::Eof) => Ok(nodes),
        _ => Err(Error::new("unexpected {{end}} or {{else}}".into())),
    }
}

//! Reads a Dockerfile into [`super::ast::Dockerfile`].
//!
//! Hand-written, because no maintained crate parses BuildKit's Dockerfile
//! dialect into what the builder needs. On crates.io, `dockerfile-parser`
//! (HewlettPackard, pest grammar) predates BuildKit's heredocs and leaves
//! flags such as `--mount` as uninterpreted strings; `dockerfile-parser-rs`
//! and `parse-dockerfile` give syntax trees but not BuildKit's semantics
//! (RUN mount options, HEALTHCHECK durations, exec-form fallback, heredoc
//! RUN rules, stage-name checks) nor errors phrased for our users with
//! their line. The behaviour here follows moby/buildkit's
//! `frontend/dockerfile/parser` and `instructions` packages:
//!
//! - parser directives (`# escape=`, `# syntax=`, `# check=`) only at the
//!   top, before any instruction, comment or blank line;
//! - a line ending in the escape character (then optional blanks)
//!   continues on the next one; the pieces are joined as written (the
//!   escape character removed, nothing added), so `Instruction::text` of
//!   `RUN a && \` + `    b` is `RUN a &&     b`; comment lines and blank
//!   lines inside a continuation are skipped;
//! - RUN, COPY and ADD (also as ONBUILD triggers) in shell form may
//!   carry heredocs: the lines after the instruction up to each heredoc's
//!   terminator are its body;
//! - `Instruction::text` is the keyword uppercased, one space and the
//!   rest of the (joined) line trimmed; each heredoc follows as `"\n" +
//!   body as written + terminator`.

mod instr;
mod split;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_lines;

use super::ast::{Dockerfile, Heredoc, Instruction, ParseError, Stage};
use instr::Parsed;

/// Parses a Dockerfile's text.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let err = |line: usize, message: String| ParseError { line, message };
    let mut df = Dockerfile {
        escape: '\\',
        ..Default::default()
    };
    let mut i = directives(&lines, &mut df.escape).map_err(|(l, m)| err(l, m))?;
    let escape = df.escape;
    let mut last_line = 1;
    let mut saw_instruction = false;
    while i < lines.len() {
        let start = i + 1;
        let first = lines[i].trim_start();
        i += 1;
        if first.starts_with('#') {
            continue;
        }
        let (mut joined, mut more) = continuation(first, escape);
        while more && i < lines.len() {
            let l = lines[i];
            i += 1;
            let t = l.trim_start();
            if t.starts_with('#') || t.is_empty() {
                continue;
            }
            let (part, m) = continuation(l, escape);
            joined.push_str(&part);
            more = m;
        }
        let joined = joined.trim();
        if joined.is_empty() {
            continue;
        }
        saw_instruction = true;
        last_line = start;
        let (kw, rest) = match joined.split_once(char::is_whitespace) {
            Some((k, r)) => (k.to_uppercase(), r.trim()),
            None => (joined.to_uppercase(), ""),
        };
        if !instr::KEYWORDS.contains(&kw.as_str()) {
            return Err(err(start, instr::unknown(&kw)));
        }
        let mut text = if rest.is_empty() {
            kw.clone()
        } else {
            format!("{kw} {rest}")
        };
        let mut heredocs = Vec::new();
        for (name, chomp, expand) in heredoc_words(&kw, rest, escape) {
            let mut raw = String::new();
            let mut body = String::new();
            loop {
                let Some(l) = lines.get(i) else {
                    return Err(err(
                        start,
                        format!(
                            "unterminated heredoc <<{name}: end it with a line holding only {name}"
                        ),
                    ));
                };
                i += 1;
                let stripped = if chomp { l.trim_start_matches('\t') } else { l };
                if stripped == name {
                    break;
                }
                raw.push_str(l);
                raw.push('\n');
                body.push_str(stripped);
                body.push('\n');
            }
            text.push_str(&format!("\n{raw}{name}"));
            heredocs.push(Heredoc { name, body, expand });
        }
        let parsed = instr::instruction(&kw, rest, heredocs, escape).map_err(|m| err(start, m))?;
        match parsed {
            Parsed::From {
                base,
                name,
                platform,
            } => {
                if let Some(n) = &name {
                    if let Some(s) = df.stages.iter().find(|s| s.name.as_ref() == Some(n)) {
                        return Err(err(start, format!("duplicate stage name \"{n}\": line {} already uses it; give each stage its own name", s.line)));
                    }
                }
                df.stages.push(Stage {
                    name,
                    base,
                    platform,
                    line: start,
                    instructions: vec![],
                });
            }
            Parsed::Arg(args) if df.stages.is_empty() => df.global_args.extend(args),
            Parsed::Arg(args) => push(&mut df, start, text, super::ast::Kind::Arg(args))?,
            Parsed::Other(kind) => push(&mut df, start, text, kind)?,
        }
    }
    if !saw_instruction {
        return Err(err(
            lines.len().max(1),
            "the Dockerfile is empty: it needs at least a FROM line".into(),
        ));
    }
    if df.stages.is_empty() {
        return Err(err(
            last_line,
            "the Dockerfile has no FROM: it needs at least one build stage".into(),
        ));
    }
    Ok(df)
}

/// Adds an instruction to the current stage.
fn push(
    df: &mut Dockerfile,
    line: usize,
    text: String,
    kind: super::ast::Kind,
) -> Result<(), ParseError> {
    let Some(stage) = df.stages.last_mut() else {
        return Err(ParseError { line, message: "no build stage in current context: the Dockerfile must start with FROM (ARG may come before it)".into() });
    };
    stage.instructions.push(Instruction { line, text, kind });
    Ok(())
}

/// Reads the parser directives at the top; returns the first other line.
fn directives(lines: &[&str], escape: &mut char) -> Result<usize, (usize, String)> {
    let mut seen = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(body) = l.trim_start().strip_prefix('#') else {
            return Ok(i);
        };
        let Some((key, value)) = body.split_once('=') else {
            return Ok(i);
        };
        let (key, value) = (key.trim().to_lowercase(), value.trim());
        if !matches!(key.as_str(), "escape" | "syntax" | "check") || value.is_empty() {
            return Ok(i);
        }
        if seen.contains(&key) {
            return Err((
                i + 1,
                format!("only one {key} parser directive can be used"),
            ));
        }
        if key == "escape" {
            *escape = match value {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return Err((
                        i + 1,
                        format!("invalid escape character '{value}': use \\ or `"),
                    ))
                }
            };
        }
        seen.push(key);
    }
    Ok(lines.len())
}

/// Removes a trailing escape character (and the blanks after it); says
/// whether the instruction continues on the next line.
fn continuation(line: &str, escape: char) -> (String, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    if let Some(body) = t.strip_suffix(escape) {
        if !body.ends_with(escape) {
            return (body.to_string(), true);
        }
    }
    (line.to_string(), false)
}

/// The heredocs a RUN/COPY/ADD line (or such an ONBUILD trigger) opens.
fn heredoc_words(kw: &str, rest: &str, escape: char) -> Vec<(String, bool, bool)> {
    let (kw, rest) = match kw {
        "ONBUILD" => match rest.split_once(char::is_whitespace) {
            Some((k, r)) => (k.to_uppercase(), r),
            None => return vec![],
        },
        _ => (kw.to_string(), rest),
    };
    if !matches!(kw.as_str(), "RUN" | "COPY" | "ADD") || !rest.contains("<<") {
        return vec![];
    }
    let args = split::flags(rest).1;
    if split::json_array(args).is_some() {
        return vec![];
    }
    split::raw_words(args, escape)
        .iter()
        .filter_map(|w| split::heredoc_word(w))
        .collect()
}

//! Go templates, as Docker's `--format` and `inspect -f` take them, over
//! the JSON documents Berth prints.
//!
//! Written here rather than taken from a crate: `gtmpl`, the kept Rust
//! implementation of Go's text/template, prints lists and maps in Rust's
//! debug form (`[String("a")]`) where Go prints `[a]` and `map[k:v]`, and
//! prints `<no value>` for a field that does not exist where Docker fails;
//! scripts read exactly those. This module follows Go's text/template for
//! what formats use (see `parse.rs` for the language, `eval.rs` for the
//! rules and `funcs.rs` for the functions), plus Docker's `table`
//! directive.

mod eval;
mod funcs;
mod parse;

use serde_json::Value;

/// A template that could not be parsed or run, in one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template: {0}")]
pub struct TemplateError(String);

impl TemplateError {
    fn new(text: String) -> TemplateError {
        TemplateError(text)
    }
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<parse::Node>,
}

impl Template {
    /// Parses `text`; `\t` and `\n` written as two characters (as shells
    /// pass them) become a tab and a newline, as Docker does.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        Ok(Template {
            nodes: parse::parse(&text)?,
        })
    }

    /// Runs the template over `data`.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut run = eval::Run::new(data);
        run.walk(&self.nodes, data)?;
        Ok(run.out)
    }
}

/// Prints `rows` as Docker prints a list for `--format`: `table` (or
/// nothing) gives the default columns (`columns`: header, key), `json`
/// one object a line, `table TEMPLATE` a header row and aligned columns,
/// and any other template one rendered line a row.
pub fn print_rows(
    format: Option<&str>,
    rows: &[Value],
    columns: &[(&str, &str)],
) -> anyhow::Result<()> {
    let format = format.unwrap_or("table");
    if format == "json" {
        rows.iter().for_each(|r| println!("{}", go_json(r)));
        return Ok(());
    }
    let (table, body) = match format.strip_prefix("table") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
            let rest = rest.trim_start();
            if rest.is_empty() {
                let cells: Vec<String> = columns
                    .iter()
                    .map(|(_, k)| format!("{{{{.{k}}}}}"))
                    .collect();
                (true, cells.join("\t"))
            } else {
                (true, rest.to_string())
            }
        }
        _ => (false, format.to_string()),
    };
    let t = Template::parse(&body)?;
    let mut lines = Vec::new();
    if table {
        // The header: the same template over each key's column title.
        let mut header = serde_json::Map::new();
        let keys: Vec<String> = match rows.first() {
            Some(Value::Object(m)) => m.keys().cloned().collect(),
            _ => columns.iter().map(|(_, k)| k.to_string()).collect(),
        };
        for k in keys {
            let title = columns
                .iter()
                .find(|(_, key)| *key == k)
                .map_or_else(|| split_words(&k).to_uppercase(), |(h, _)| h.to_string());
            header.insert(k, title.into());
        }
        lines.push(t.render(&Value::Object(header))?);
    }
    for r in rows {
        lines.push(t.render(r)?);
    }
    if table {
        print!("{}", align(&lines));
    } else {
        lines.iter().for_each(|l| println!("{l}"));
    }
    Ok(())
}

/// "CreatedAt" → "Created At", as Docker titles a column it has no name for.
fn split_words(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.char_indices() {
        if i > 0 && c.is_uppercase() && !key[..i].ends_with(char::is_uppercase) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Aligns tab-separated cells as Docker's tabwriter does (minimum width
/// 10, three spaces of padding; the last cell of a line is not padded).
pub fn align(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines
        .iter()
        .flat_map(|l| l.split('\n'))
        .map(|l| l.split('\t').collect())
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            let w = (c.chars().count() + 3).max(10);
            if widths.len() <= i {
                widths.push(w);
            } else {
                widths[i] = widths[i].max(w);
            }
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                line.push_str(&format!("{c:<w$}", w = widths[i]));
            } else {
                line.push_str(c);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A value as Go's `json.Marshal` writes it: compact, with `<`, `>` and
/// `&` escaped (`\u003c`…), as Docker's `--format json` prints rows (its
/// template function `json` does not escape them). Those characters only
/// occur inside strings in JSON.
pub fn go_json(v: &Value) -> String {
    serde_json::to_string(v)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests;

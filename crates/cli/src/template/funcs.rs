//! The functions a format can call: Go's built-ins (`and`, `or`, `not`,
//! `len`, `index`, `eq`…`ge`, `print`, `printf`, `println`) and Docker's
//! (`json`, `join`, `split`, `upper`, `lower`, `title`, `truncate`,
//! `pad`).

use std::cmp::Ordering;

use serde_json::Value;

use super::eval::{print, truth};

fn need(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn text(v: &Value) -> String {
    print(v)
}

/// Compares two values as Go's `lt` does: numbers with numbers, strings
/// with strings.
fn compare(a: &Value, b: &Value) -> Result<Ordering, String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            Ok(x.partial_cmp(&y).unwrap_or(Ordering::Equal))
        }
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            print(a),
            print(b)
        )),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Go's Sprint: a space between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !a.is_string() && !args[i - 1].is_string() {
            out.push(' ');
        }
        out.push_str(&text(a));
    }
    out
}

/// Go's Sprintf for the verbs formats use: %s %v %d %q %t %f %%.
fn sprintf(args: &[Value]) -> Result<String, String> {
    let Some((format, rest)) = args.split_first() else {
        return Err("printf needs a format".into());
    };
    let format = format.as_str().ok_or("printf's format must be a string")?;
    let mut out = String::new();
    let mut values = rest.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut width = String::new();
        while let Some(d) = chars
            .peek()
            .filter(|d| d.is_ascii_digit() || **d == '-' || **d == '.')
        {
            width.push(*d);
            chars.next();
        }
        let Some(verb) = chars.next() else { break };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let v = values.next().cloned().unwrap_or(Value::Null);
        let s = match verb {
            'q' => Value::String(text(&v)).to_string(),
            'f' => format!("{:.6}", v.as_f64().unwrap_or(0.0)),
            _ => text(&v),
        };
        let w: usize = width
            .trim_start_matches('-')
            .split('.')
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or(0);
        if width.starts_with('-') {
            out.push_str(&format!("{s:<w$}"));
        } else {
            out.push_str(&format!("{s:>w$}"));
        }
    }
    Ok(out)
}

/// Calls the function `name` with `args`.
pub fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
    let v = match name {
        "and" => args
            .iter()
            .find(|a| !truth(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|a| truth(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "not" => {
            need(name, &args, 1)?;
            (!truth(&args[0])).into()
        }
        "len" => {
            need(name, &args, 1)?;
            match &args[0] {
                Value::String(s) => s.len().into(),
                Value::Array(a) => a.len().into(),
                Value::Object(m) => m.len().into(),
                other => return Err(format!("len of {}", print(other))),
            }
        }
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                return Err("index needs a value".into());
            };
            let mut v = first.clone();
            for k in keys {
                v = match (&v, k) {
                    (Value::Object(m), Value::String(s)) => {
                        m.get(s).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n.as_u64().unwrap_or(u64::MAX) as usize;
                        a.get(i)
                            .cloned()
                            .ok_or(format!("index out of range: {i}"))?
                    }
                    (Value::Null, _) => Value::Null,
                    _ => return Err(format!("can't index {} with {}", print(&v), print(k))),
                };
            }
            v
        }
        "eq" => {
            let Some((first, rest)) = args.split_first() else {
                return Err("eq needs two values".into());
            };
            rest.iter().any(|r| equal(first, r)).into()
        }
        "ne" => {
            need(name, &args, 2)?;
            (!equal(&args[0], &args[1])).into()
        }
        "lt" | "le" | "gt" | "ge" => {
            need(name, &args, 2)?;
            let o = compare(&args[0], &args[1])?;
            match name {
                "lt" => o == Ordering::Less,
                "le" => o != Ordering::Greater,
                "gt" => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }
            .into()
        }
        "print" => sprint(&args).into(),
        "println" => {
            let parts: Vec<String> = args.iter().map(text).collect();
            format!("{}\n", parts.join(" ")).into()
        }
        "printf" => sprintf(&args)?.into(),
        "json" => {
            need(name, &args, 1)?;
            // Docker's `json` sets SetEscapeHTML(false): no \u003c here.
            serde_json::to_string(&args[0]).unwrap_or_default().into()
        }
        "join" => {
            need(name, &args, 2)?;
            let sep = text(&args[1]);
            match &args[0] {
                Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(&sep).into(),
                Value::Null => "".into(),
                other => text(other).into(),
            }
        }
        "split" => {
            need(name, &args, 2)?;
            let (s, sep) = (text(&args[0]), text(&args[1]));
            Value::Array(
                s.split(sep.as_str())
                    .map(|p| p.to_string().into())
                    .collect(),
            )
        }
        "upper" => {
            need(name, &args, 1)?;
            text(&args[0]).to_uppercase().into()
        }
        "lower" => {
            need(name, &args, 1)?;
            text(&args[0]).to_lowercase().into()
        }
        "title" => {
            need(name, &args, 1)?;
            let s = text(&args[0]);
            let mut out = String::new();
            let mut start = true;
            for c in s.chars() {
                out.extend(if start {
                    c.to_uppercase().collect::<Vec<_>>()
                } else {
                    vec![c]
                });
                start = !c.is_alphanumeric();
            }
            out.into()
        }
        "truncate" => {
            need(name, &args, 2)?;
            let n = args[1].as_u64().unwrap_or(0) as usize;
            text(&args[0]).chars().take(n).collect::<String>().into()
        }
        "pad" => {
            need(name, &args, 3)?;
            let (l, r) = (
                args[1].as_u64().unwrap_or(0) as usize,
                args[2].as_u64().unwrap_or(0) as usize,
            );
            format!("{}{}{}", " ".repeat(l), text(&args[0]), " ".repeat(r)).into()
        }
        _ => return Err(format!("function {name:?} not defined")),
    };
    Ok(v)
}

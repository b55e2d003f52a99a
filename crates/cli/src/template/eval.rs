//! Running a parsed template over a JSON document, with Go's rules: truth
//! (false, 0, nil and empty are false), `range` over lists and maps
//! (sorted keys), variables scoped to their block, a missing field is an
//! error, and values printed as Go's `%v` prints them (`[a b]`,
//! `map[k:v]`, `<nil>`).

use serde_json::Value;

use super::parse::{Arg, Node, Pipe};
use super::TemplateError as Error;

/// Go's `%v` of a value.
pub fn print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Value::Array(a) => format!("[{}]", a.iter().map(print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", print(&m[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's truth of a value.
pub fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// The state of one run.
pub struct Run<'a> {
    root: &'a Value,
    vars: Vec<(String, Value)>,
    /// What the template printed.
    pub out: String,
}

impl<'a> Run<'a> {
    /// A run over `root`.
    pub fn new(root: &'a Value) -> Run<'a> {
        Run {
            root,
            vars: vec![("$".into(), root.clone())],
            out: String::new(),
        }
    }

    /// Runs `nodes` with `dot` as `.`.
    pub fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<(), Error> {
        for node in nodes {
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&print(&v));
                    }
                }
                Node::If(p, then, els) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let r = self.walk(if truth(&v) { then } else { els }, dot);
                    self.vars.truncate(mark);
                    r?;
                }
                Node::With(p, then, els) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let r = if truth(&v) {
                        self.walk(then, &v)
                    } else {
                        self.walk(els, dot)
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::Range(p, body, els) => self.range(p, body, els, dot)?,
            }
        }
        Ok(())
    }

    fn range(&mut self, p: &Pipe, body: &[Node], els: &[Node], dot: &Value) -> Result<(), Error> {
        let mark = self.vars.len();
        let plain = Pipe {
            decl: Vec::new(),
            ..p.clone()
        };
        let v = self.pipe(&plain, dot)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, x)| (i.into(), x.clone()))
                .collect(),
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                keys.into_iter()
                    .map(|k| (k.clone().into(), m[k].clone()))
                    .collect()
            }
            Value::Null => Vec::new(),
            Value::Number(n) if n.as_u64().is_some() => (0..n.as_u64().unwrap_or(0))
                .map(|i| (i.into(), i.into()))
                .collect(),
            other => {
                return Err(Error::new(format!(
                    "range can't iterate over {} in {{{{range {}}}}}",
                    print(other),
                    p.text
                )))
            }
        };
        if items.is_empty() {
            return self.walk(els, dot);
        }
        for (key, item) in items {
            match p.decl.as_slice() {
                [v] => self.vars.push((v.clone(), item.clone())),
                [k, v] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((v.clone(), item.clone()));
                }
                _ => {}
            }
            let r = self.walk(body, &item);
            self.vars.truncate(mark);
            r?;
        }
        Ok(())
    }

    /// A pipeline's value; declared variables are set.
    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Result<Value, Error> {
        let mut prev = None;
        for cmd in &p.cmds {
            prev = Some(self.command(cmd, dot, prev, p)?);
        }
        let v = prev.unwrap_or(Value::Null);
        for name in &p.decl {
            self.vars.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn command(
        &mut self,
        cmd: &[Arg],
        dot: &Value,
        prev: Option<Value>,
        p: &Pipe,
    ) -> Result<Value, Error> {
        if let Some(Arg::Func(name)) = cmd.first() {
            let mut args = Vec::new();
            for a in &cmd[1..] {
                args.push(self.arg(a, dot, p)?);
            }
            args.extend(prev);
            return super::funcs::call(name, args)
                .map_err(|e| Error::new(format!("executing {{{{{}}}}}: {e}", p.text)));
        }
        if cmd.len() > 1 || prev.is_some() {
            return Err(Error::new(format!(
                "executing {{{{{}}}}}: can't give an argument to a non-function",
                p.text
            )));
        }
        self.arg(&cmd[0], dot, p)
    }

    fn arg(&mut self, a: &Arg, dot: &Value, p: &Pipe) -> Result<Value, Error> {
        let (base, names) = match a {
            Arg::Lit(v) => return Ok(v.clone()),
            Arg::Func(name) => {
                return super::funcs::call(name, Vec::new())
                    .map_err(|e| Error::new(format!("executing {{{{{}}}}}: {e}", p.text)))
            }
            Arg::Field(names) => (dot.clone(), names),
            Arg::Var(name, names) => {
                let v = if name == "$" {
                    self.root.clone()
                } else {
                    self.vars
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| Error::new(format!("undefined variable {name}")))?
                };
                (v, names)
            }
            Arg::Sub(inner, names) => (self.pipe(inner, dot)?, names),
        };
        let mut v = base;
        for name in names {
            v = match v {
                Value::Object(mut m) => m.remove(name).ok_or_else(|| {
                    Error::new(format!(
                        "executing {{{{{}}}}}: map has no entry for key {name:?}",
                        p.text
                    ))
                })?,
                Value::Null => Value::Null,
                other => {
                    return Err(Error::new(format!(
                        "executing {{{{{}}}}}: can't evaluate field {name} in {}",
                        p.text,
                        print(&other)
                    )))
                }
            };
        }
        Ok(v)
    }
}

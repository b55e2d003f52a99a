//! Docker's ways of showing numbers and times: "7.8MB", "2 weeks ago",
//! and aligned tables.

/// Bytes in Docker's decimal units ("7.8MB"), three significant digits
/// as Docker's `HumanSizeWithPrecision(…, 3)`.
pub fn size(bytes: u64) -> String {
    size_with(bytes, 3)
}

/// Bytes in decimal units with four significant digits ("1.984MB"), as
/// go-units' `HumanSize` (Docker's `VirtualSize`).
pub fn human_size(bytes: u64) -> String {
    size_with(bytes, 4)
}

/// Bytes in decimal units with `digits` significant digits (Go's `%.Ng`).
fn size_with(bytes: u64, digits: i32) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let whole = if v < 1.0 {
        1
    } else {
        v.log10().floor() as i32 + 1
    };
    let decimals = (digits - whole).max(0) as usize;
    format!("{}{}", trim_zeros(&format!("{v:.decimals$}")), units[i])
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// "3 days ago", as `docker images` and `docker ps` say it.
pub fn ago(seconds: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    format!("{} ago", human_duration((now - seconds).max(0)))
}

/// A span of seconds in Docker's words (go-units' `HumanDuration`).
pub fn human_duration(seconds: i64) -> String {
    let minutes = seconds / 60;
    // Hours are rounded, as go-units rounds them.
    let hours = (seconds + 1800) / 3600;
    match seconds {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// `KEY=VALUE` flags (labels, options) as a map; a bare key has "".
pub fn pairs(list: &[String]) -> std::collections::HashMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `-f KEY=VALUE` flags as the API's filter map.
pub fn filters(
    list: &[String],
) -> anyhow::Result<std::collections::HashMap<String, berth_client::types::StringList>> {
    let mut out: std::collections::HashMap<String, berth_client::types::StringList> =
        Default::default();
    for f in list {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("the filter '{f}' is not KEY=VALUE (e.g. name=web)"))?;
        out.entry(k.into()).or_default().values.push(v.into());
    }
    Ok(out)
}

/// Prints `rows` as `--format` asks: nothing or `table` gives the default
/// table of `columns` (header, key); `json`, `table TEMPLATE` and other
/// templates go through [`crate::template::print_rows`].
pub fn print_rows(
    format: Option<&str>,
    rows: &[serde_json::Value],
    columns: &[(&str, &str)],
) -> anyhow::Result<()> {
    match format {
        None | Some("table") => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    columns
                        .iter()
                        .map(|(_, k)| match &r[*k] {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Null => String::new(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .collect();
            let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
            table(&headers, &cells);
            Ok(())
        }
        Some(f) => crate::template::print_rows(Some(f), rows, columns),
    }
}

/// A template as `inspect`, `version` and `info` take it: a bad one is
/// told as "template parsing error: …" and exits with 64, as Docker's.
pub fn parse_template(text: &str) -> anyhow::Result<crate::template::Template> {
    crate::template::Template::parse(text).map_err(|e| {
        eprintln!("template parsing error: {e:#}");
        crate::Exit(64).into()
    })
}

/// Prints what an `inspect` found as Docker's does: the template is
/// checked first (a bad one is refused with 64, "template parsing error:
/// …"); found objects are printed as a JSON list (`[]` when none was) or
/// one rendered line each (an empty line when none rendered); then the
/// names not found, and renderings that failed, are reported, one
/// sentence a line, with status 1.
pub fn print_inspected(
    format: Option<&str>,
    docs: &[serde_json::Value],
    mut failed: Vec<anyhow::Error>,
) -> anyhow::Result<()> {
    match format {
        None | Some("json") | Some("") => {
            println!("{}", serde_json::to_string_pretty(docs)?);
        }
        Some(f) => {
            let t = parse_template(f)?;
            let mut wrote = false;
            for d in docs {
                match t.render(d) {
                    Ok(line) => {
                        println!("{line}");
                        wrote = true;
                    }
                    Err(e) => failed.push(e.into()),
                }
            }
            if !wrote {
                println!();
            }
        }
    }
    match failed.len() {
        0 => Ok(()),
        1 => Err(failed.remove(0)),
        _ => {
            let lines: Vec<String> = failed.iter().map(|e| format!("{e:#}")).collect();
            Err(anyhow::anyhow!(lines.join("\n")))
        }
    }
}

/// Prints rows as a table as Docker's tabwriter does: columns three
/// spaces apart, each at least ten characters wide with its padding.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                let w = (widths[i] + 3).max(10);
                out.push_str(&format!("{c:<w$}"));
            }
        }
        // As Go's tabwriter: every cell but the last padded, so an
        // empty last cell leaves the padding (`history`'s COMMENT).
        println!("{out}");
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Bytes in binary units, as `docker stats` shows memory ("1.387MiB",
/// "0B"): go-units' `BytesSize`, four significant digits (Go's `%.4g`).
pub fn binary_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let digits = if v < 1.0 {
        1
    } else {
        v.log10().floor() as i32 + 1
    };
    let decimals = (4 - digits).max(0) as usize;
    format!("{}{}", trim_zeros(&format!("{v:.decimals$}")), units[i])
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(super::size(999), "999B");
        assert_eq!(super::size(7_800_000), "7.8MB");
        assert_eq!(super::size(127_000_000), "127MB");
        assert_eq!(super::size(1_500), "1.5kB");
        assert_eq!(super::size(0), "0B");
        assert_eq!(super::human_size(1_984_123), "1.984MB");
    }

    #[test]
    fn binary_sizes_read_like_docker() {
        assert_eq!(super::binary_size(0), "0B");
        assert_eq!(super::binary_size(888_832), "868KiB");
        assert_eq!(super::binary_size(1_454_080), "1.387MiB");
        assert_eq!(super::binary_size(25_275_842_560), "23.54GiB");
    }

    #[test]
    fn durations_read_like_docker() {
        let cases = [
            (0, "Less than a second"),
            (1, "1 second"),
            (4, "4 seconds"),
            (61, "About a minute"),
            (150, "2 minutes"),
            (3600, "About an hour"),
            (5 * 3600, "5 hours"),
            (3 * 86400, "3 days"),
            (20 * 86400, "2 weeks"),
            (90 * 86400, "3 months"),
            (800 * 86400, "2 years"),
        ];
        for (s, want) in cases {
            assert_eq!(super::human_duration(s), want);
        }
    }
}

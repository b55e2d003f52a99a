//! Docker's ways of showing numbers and times: "7.8MB", "2 weeks ago",
//! and aligned tables.

/// Bytes in Docker's decimal units ("7.8MB").
pub fn size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    // Three significant digits, as Docker's HumanSizeWithPrecision(…, 3).
    let s = if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    };
    format!("{}{}", trim_zeros(&s), units[i])
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// "3 days ago", as `docker images` says it.
pub fn ago(seconds: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let d = (now - seconds).max(0);
    let (n, unit) = match d {
        d if d < 60 => return "Less than a minute ago".into(),
        d if d < 3600 => (d / 60, "minute"),
        d if d < 86400 => (d / 3600, "hour"),
        d if d < 86400 * 14 => (d / 86400, "day"),
        d if d < 86400 * 60 => (d / (86400 * 7), "week"),
        d if d < 86400 * 365 * 2 => (d / (86400 * 30), "month"),
        d => (d / (86400 * 365), "year"),
    };
    if n == 1 {
        format!(
            "{} {unit} ago",
            if unit == "hour" { "About an" } else { "1" }
        )
    } else {
        format!("{n} {unit}s ago")
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

/// Prints inspect documents: a JSON array (no format, or `json`), or each
/// document through the template.
pub fn print_docs(format: Option<&str>, docs: &[serde_json::Value]) -> anyhow::Result<()> {
    match format {
        None | Some("json") | Some("") => {
            println!("{}", serde_json::to_string_pretty(docs)?);
        }
        Some(f) => {
            let t = crate::template::Template::parse(f)?;
            for d in docs {
                println!("{}", t.render(d)?);
            }
        }
    }
    Ok(())
}

/// Prints rows as a table with columns three spaces apart.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
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
                out.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Bytes in binary units, as `docker stats` shows memory ("1.5MiB").
pub fn binary_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.4}")
        .chars()
        .take(if v >= 1000.0 { 4 } else { 5 })
        .collect::<String>()
        .trim_end_matches('.')
        .to_string()
        + units[i]
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(super::size(999), "999B");
        assert_eq!(super::size(7_800_000), "7.8MB");
        assert_eq!(super::size(127_000_000), "127MB");
        assert_eq!(super::size(1_500), "1.5kB");
    }
}

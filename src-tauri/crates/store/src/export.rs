//! Logged rows out of the store as CSV or JSON, and the time expressions the command line accepts
//! (`now`, `-24h`, `-7d`, RFC 3339).

use std::io::Write;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use dsmon_core::{format_ts, Row};

use crate::sqlite::{RowQuery, StoreError};
use crate::SampleStore;

/// The CSV header, also the column order of the JSON objects.
pub const CSV_HEADER: &str = "ts,node,cpu_pct,mem_pct,disk_pct,net_in_kbps,net_out_kbps,error";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{input:?} is not a time: write RFC 3339 (2026-11-24T10:00:00Z), a date (2026-11-24), `now`, or a relative time such as -24h, -7d, -30m")]
    BadTime { input: String },
    #[error("--from ({from}) is after --to ({to})")]
    Range { from: String, to: String },
    #[error("unknown node {name:?} (the database knows: {known})")]
    UnknownNode { name: String, known: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the output failed: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, ExportError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Csv,
    Json,
}

/// The range of a history request (the API's and the desktop app's): `from`, by default 24 hours
/// ago, to `to`, by default now.
pub fn history_range(
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(i64, i64)> {
    Ok((
        parse_time(from.unwrap_or("-24h"), now)?,
        parse_time(to.unwrap_or("now"), now)?,
    ))
}

/// Parses `now`, `-24h` / `-7d` / `-90m` (relative to `now`), a date (midnight UTC) or RFC 3339.
pub fn parse_time(input: &str, now: DateTime<Utc>) -> Result<i64> {
    let s = input.trim();
    let bad = || ExportError::BadTime {
        input: input.to_string(),
    };
    if s.eq_ignore_ascii_case("now") {
        return Ok(now.timestamp());
    }
    if let Some(rel) = s.strip_prefix('-') {
        let d = humantime::parse_duration(rel).map_err(|_| bad())?;
        let secs = i64::try_from(d.as_secs()).map_err(|_| bad())?;
        return now.timestamp().checked_sub(secs).ok_or_else(bad);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp())
            .ok_or_else(bad);
    }
    Err(bad())
}

/// Checks the query against the store (range order, node names) before anything is written.
pub fn validate(store: &dyn SampleStore, q: &RowQuery) -> Result<()> {
    if q.from > q.to {
        return Err(ExportError::Range {
            from: format_ts(q.from),
            to: format_ts(q.to),
        });
    }
    if !q.nodes.is_empty() {
        let known = store.node_names()?;
        if let Some(name) = q.nodes.iter().find(|n| !known.contains(n)) {
            return Err(ExportError::UnknownNode {
                name: name.clone(),
                known: if known.is_empty() {
                    "no nodes yet".into()
                } else {
                    known.join(", ")
                },
            });
        }
    }
    Ok(())
}

/// Writes the rows matching `q` to `out`; returns how many were written.
pub fn write_rows(
    store: &dyn SampleStore,
    q: &RowQuery,
    format: Format,
    out: &mut dyn Write,
) -> Result<usize> {
    validate(store, q)?;
    let mut n = 0usize;
    match format {
        Format::Csv => {
            let mut w = csv_writer(&mut *out);
            w.write_record(CSV_HEADER.split(',')).map_err(io_error)?;
            store.for_each_row::<ExportError>(q, |row| {
                write_csv_record(&mut w, &row).map_err(io_error)?;
                n += 1;
                Ok(())
            })?;
            w.flush()?;
        }
        Format::Json => {
            out.write_all(b"[")?;
            store.for_each_row::<ExportError>(q, |row| {
                out.write_all(if n == 0 { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut *out, &JsonRow::from(&row))
                    .map_err(std::io::Error::from)?;
                n += 1;
                Ok(())
            })?;
            out.write_all(b"\n]\n")?;
        }
    }
    out.flush()?;
    Ok(n)
}

/// The CSV dialect of exports (and of `dsmon import`): comma-separated, fields quoted only where
/// needed (RFC 4180), records ended by "\n".
fn csv_writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out)
}

/// One row in CSV, fields quoted only where needed (RFC 4180).
pub fn write_csv_row(out: &mut dyn Write, row: &Row) -> std::io::Result<()> {
    let mut w = csv_writer(out);
    write_csv_record(&mut w, row).map_err(io_error)?;
    w.flush()
}

/// A text field as a spreadsheet will not run it: one that starts like a formula (`=`, `+`, `-`,
/// `@`, a tab or a carriage return) gets a leading `'` (OWASP's advice for CSV injection); so does
/// one that starts with `'`, so that [`crate::import`] can take exactly one off again and a
/// round trip keeps every name and error text as it was.
pub fn neutralise(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\'') => format!("'{text}").into(),
        _ => text.into(),
    }
}

/// The inverse of [`neutralise`].
pub fn unneutralise(text: &str) -> &str {
    text.strip_prefix('\'').unwrap_or(text)
}

/// The fields of `row` in [`CSV_HEADER`]'s order: numbers as Rust prints an `f64`, an empty field
/// for a node that was down, text fields [`neutralise`]d.
fn write_csv_record<W: Write>(w: &mut csv::Writer<W>, row: &Row) -> csv::Result<()> {
    let m = row.metrics.as_ref();
    let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    w.write_record([
        format_ts(row.ts).as_str(),
        &neutralise(&row.node),
        &num(m.map(|m| m.cpu_pct)),
        &num(m.map(|m| m.mem_pct)),
        &num(m.map(|m| m.disk_pct)),
        &num(m.map(|m| m.net_in_kbps)),
        &num(m.map(|m| m.net_out_kbps)),
        &neutralise(row.error.as_deref().unwrap_or("")),
    ])
}

/// The writer's I/O error as it was (a closed pipe stays [`std::io::ErrorKind::BrokenPipe`]);
/// its other errors (uneven records, which the fixed columns rule out) as an I/O error.
fn io_error(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("CSV: {other:?}")),
    }
}

#[derive(Serialize)]
struct JsonRow<'a> {
    ts: String,
    node: &'a str,
    cpu_pct: Option<f64>,
    mem_pct: Option<f64>,
    disk_pct: Option<f64>,
    net_in_kbps: Option<f64>,
    net_out_kbps: Option<f64>,
    error: Option<&'a str>,
}

impl<'a> From<&'a Row> for JsonRow<'a> {
    fn from(r: &'a Row) -> Self {
        let m = r.metrics.as_ref();
        Self {
            ts: format_ts(r.ts),
            node: &r.node,
            cpu_pct: m.map(|m| m.cpu_pct),
            mem_pct: m.map(|m| m.mem_pct),
            disk_pct: m.map(|m| m.disk_pct),
            net_in_kbps: m.map(|m| m.net_in_kbps),
            net_out_kbps: m.map(|m| m.net_out_kbps),
            error: r.error.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formula_cells_are_neutralised_and_come_back() {
        for (text, csv) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("'quoted", "''quoted"),
            ("web-1", "web-1"),
            ("connection failed: refused", "connection failed: refused"),
            ("", ""),
        ] {
            assert_eq!(super::neutralise(text), csv, "{text:?}");
            assert_eq!(super::unneutralise(&super::neutralise(text)), text);
        }
    }

    use super::*;
    use dsmon_core::Metrics;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn time_expressions() {
        let n = now().timestamp();
        assert_eq!(parse_time("now", now()).unwrap(), n);
        assert_eq!(parse_time("-24h", now()).unwrap(), n - 86_400);
        assert_eq!(parse_time("-7d", now()).unwrap(), n - 7 * 86_400);
        assert_eq!(parse_time("-30m", now()).unwrap(), n - 1800);
        assert_eq!(parse_time("2026-11-24T11:00:00Z", now()).unwrap(), n - 3600);
        assert_eq!(
            parse_time("2026-11-24T12:00:00+01:00", now()).unwrap(),
            n - 3600
        );
        assert_eq!(parse_time("2026-11-24", now()).unwrap(), n - 12 * 3600);
        for bad in [
            "",
            "yesterday",
            "-",
            "-3x",
            "24h",
            "2026-13-01",
            "-99999999999999999999d",
        ] {
            let e = parse_time(bad, now()).unwrap_err().to_string();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }

    #[test]
    fn csv_rows() {
        let mut out = Vec::new();
        let up = Row {
            ts: 1_795_525_800,
            node: "n1".into(),
            metrics: Some(Metrics {
                cpu_pct: 40.0,
                mem_pct: 50.5,
                disk_pct: 25.0,
                net_in_kbps: 1000.0,
                net_out_kbps: 2000.25,
            }),
            error: None,
        };
        let down = Row {
            ts: 1_795_525_800,
            node: "n2".into(),
            metrics: None,
            error: Some("connection failed: \"refused\", really".into()),
        };
        write_csv_row(&mut out, &up).unwrap();
        write_csv_row(&mut out, &down).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-11-24T13:10:00Z,n1,40,50.5,25,1000,2000.25,\n\
             2026-11-24T13:10:00Z,n2,,,,,,\"connection failed: \"\"refused\"\", really\"\n"
        );
    }
}

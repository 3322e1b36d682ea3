//! `dsmon import`: rows in exactly the export's CSV format into the store. Every line is checked
//! before anything is written; rows already present are left alone; the write is one transaction.

use std::io::Read;

use crate::export::CSV_HEADER;
use dsmon_core::{Metrics, Row, METRICS};

use crate::sqlite::StoreError;
use crate::SampleStore;

/// How many bad lines are listed before the rest are only counted.
const MAX_REPORTED: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {count} bad line(s), nothing imported:\n{listing}")]
    BadLines {
        file: String,
        count: usize,
        listing: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows in the file.
    pub rows: usize,
    /// Rows newly written (the rest were already present).
    pub inserted: usize,
}

/// Parses the whole CSV text; on any bad line returns every problem with its line number.
pub fn parse(text: impl Read, file: &str) -> Result<Vec<Row>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text);
    let mut rows = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut first = true;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(format!("line {line}: {e}"));
                // A broken quote leaves the reader unable to continue meaningfully.
                break;
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        if first {
            first = false;
            let header: Vec<&str> = record.iter().collect();
            if header.join(",") != CSV_HEADER {
                problems.push(format!(
                    "line {line}: the header must be exactly {CSV_HEADER}"
                ));
                break;
            }
            continue;
        }
        match parse_record(&record) {
            Ok(r) => rows.push(r),
            Err(why) => problems.push(format!("line {line}: {why}")),
        }
    }
    if first && problems.is_empty() {
        problems.push(format!(
            "line 1: empty file (expected the header {CSV_HEADER})"
        ));
    }
    if problems.is_empty() {
        return Ok(rows);
    }
    let count = problems.len();
    let mut listing: Vec<String> = problems
        .into_iter()
        .take(MAX_REPORTED)
        .map(|p| format!("  {p}"))
        .collect();
    if count > MAX_REPORTED {
        listing.push(format!("  ... and {} more", count - MAX_REPORTED));
    }
    Err(ImportError::BadLines {
        file: file.to_string(),
        count,
        listing: listing.join("\n"),
    })
}

fn parse_record(r: &csv::StringRecord) -> Result<Row, String> {
    if r.len() != 8 {
        return Err(format!("{} fields, expected 8", r.len()));
    }
    let ts = chrono::DateTime::parse_from_rfc3339(&r[0])
        .map_err(|_| format!("ts {:?} is not an RFC 3339 time", &r[0]))?
        .timestamp();
    let node = crate::export::unneutralise(r[1].trim());
    if node.is_empty() {
        return Err("empty node name".into());
    }
    let mut values = [None; 5];
    for (i, v) in values.iter_mut().enumerate() {
        let text = r[2 + i].trim();
        if text.is_empty() {
            continue;
        }
        let x: f64 = text
            .parse()
            .map_err(|_| format!("{} {text:?} is not a number", METRICS[i]))?;
        if !x.is_finite() || x < 0.0 {
            return Err(format!(
                "{} {text:?} must be a finite number >= 0",
                METRICS[i]
            ));
        }
        *v = Some(x);
    }
    let error = Some(crate::export::unneutralise(&r[7]).to_string()).filter(|e| !e.is_empty());
    let metrics = Metrics::from_options(values);
    if metrics.is_none() && values.iter().any(Option::is_some) {
        return Err("either all five metrics or none (an unreachable node) must be given".into());
    }
    if metrics.is_none() && error.is_none() {
        return Err("a row without metrics needs the error that explains it".into());
    }
    Ok(Row {
        ts,
        node: node.to_string(),
        metrics,
        error,
    })
}

/// Parses `text` and writes its rows in one transaction.
pub fn import(
    store: &mut dyn SampleStore,
    text: impl Read,
    file: &str,
) -> Result<ImportReport, ImportError> {
    let rows = parse(text, file)?;
    let inserted = store.insert_rows(&rows)?;
    Ok(ImportReport {
        rows: rows.len(),
        inserted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "ts,node,cpu_pct,mem_pct,disk_pct,net_in_kbps,net_out_kbps,error\n\
        2026-11-24T13:10:00Z,n1,40,50.5,25,1000,2000.25,\n\
        2026-11-24T13:10:00Z,old,,,,,,\"connection failed: \"\"refused\"\", really\"\n";

    #[test]
    fn round_trip_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = crate::SqliteStore::open(&dir.path().join("i.sqlite3")).unwrap();
        let r = import(&mut s, GOOD.as_bytes(), "x.csv").unwrap();
        assert_eq!(
            r,
            ImportReport {
                rows: 2,
                inserted: 2
            }
        );
        let r = import(&mut s, GOOD.as_bytes(), "x.csv").unwrap();
        assert_eq!(
            r,
            ImportReport {
                rows: 2,
                inserted: 0
            }
        );
        let mut out = Vec::new();
        let q = crate::RowQuery {
            from: 0,
            to: i64::MAX,
            nodes: vec![],
        };
        crate::export::write_rows(&s, &q, crate::export::Format::Csv, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), GOOD);
    }

    #[test]
    fn bad_lines_are_all_reported_with_numbers_and_nothing_is_written() {
        let text = "ts,node,cpu_pct,mem_pct,disk_pct,net_in_kbps,net_out_kbps,error\n\
            2026-11-24T13:10:00Z,n1,40,50,25,1000,2000,\n\
            yesterday,n1,40,50,25,1000,2000,\n\
            2026-11-24T13:20:00Z,n1,forty,50,25,1000,2000,\n\
            2026-11-24T13:20:00Z,n1,40,,25,1000,2000,\n\
            2026-11-24T13:30:00Z,n1,,,,,,\n\
            2026-11-24T13:40:00Z,n1,40\n";
        let dir = tempfile::tempdir().unwrap();
        let mut s = crate::SqliteStore::open(&dir.path().join("i.sqlite3")).unwrap();
        let e = import(&mut s, text.as_bytes(), "bad.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("bad.csv: 5 bad line(s), nothing imported"),
            "{e}"
        );
        for needle in [
            "line 3: ts \"yesterday\"",
            "line 4: cpu_pct \"forty\" is not a number",
            "line 5: either all five",
            "line 6: a row without metrics needs",
            "line 7: 3 fields, expected 8",
        ] {
            assert!(e.contains(needle), "{needle} in {e}");
        }
        assert_eq!(s.node_names().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn header_must_match() {
        let e = parse("time,node\n".as_bytes(), "h.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 1: the header must be exactly ts,node,"),
            "{e}"
        );
        let e = parse("".as_bytes(), "h.csv").unwrap_err().to_string();
        assert!(e.contains("empty file"), "{e}");
    }
}

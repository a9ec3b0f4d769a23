//! Tables of examples with a header row: TSV (GLUE's files: split on TAB
//! only, since their sentences hold stray `"`), CSV (quoted as RFC 4180),
//! or JSON lines (one object a line). Cells are read as text; a row that
//! lacks a column is reported with its line number and skipped.

use crate::error::{clipped, quoted, Error, Result};

/// Which format a file is, from its name (`.tsv`, `.csv`, `.jsonl`/`.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tsv,
    Csv,
    JsonLines,
}

impl Format {
    pub fn of_name(name: &str) -> Option<Format> {
        let lower = name.to_ascii_lowercase();
        let ext = lower.rsplit('.').next()?;
        match ext {
            "tsv" | "tab" => Some(Format::Tsv),
            "csv" => Some(Format::Csv),
            "jsonl" | "json" | "ndjson" => Some(Format::JsonLines),
            _ => None,
        }
    }
}

/// A file's columns and rows, as text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<String>,
    /// Each row with its line number (1-based, for messages).
    pub rows: Vec<(usize, Vec<String>)>,
    /// `line N: why` for every row that was skipped.
    pub skipped: Vec<String>,
}

impl Table {
    pub fn parse(text: &str, format: Format) -> Result<Table> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim().is_empty() {
            return Err(Error::Input("the file is empty".into()));
        }
        match format {
            Format::Tsv | Format::Csv => delimited(text, format),
            Format::JsonLines => json_lines(text),
        }
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| {
            Error::Input(format!(
                "no column {}: the file has {}",
                quoted(name),
                self.columns.iter().map(|c| quoted(c)).collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The first of `names` that is a column.
    pub fn find(&self, names: &[&str]) -> Option<usize> {
        names.iter().find_map(|n| self.columns.iter().position(|c| c.eq_ignore_ascii_case(n)))
    }
}

fn delimited(text: &str, format: Format) -> Result<Table> {
    let rows: Vec<(usize, Vec<String>)> = match format {
        // GLUE's TSVs: TAB only, no quoting; a line is a row, so line numbers are exact
        Format::Tsv => text.lines().enumerate().map(|(i, l)| (i + 1, l.split('\t').map(|c| c.trim().to_string()).collect())).collect(),
        _ => {
            let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
            let mut rows = Vec::new();
            for record in reader.records() {
                let r = record.map_err(|e| Error::Input(format!("the file cannot be read as CSV: {}", clipped(&e.to_string()))))?;
                // csv counts lines without the blank ones it skips: close enough to find a row
                let line = r.position().map_or(0, |p| p.line()) as usize;
                rows.push((line, r.iter().map(|c| c.trim().to_string()).collect()));
            }
            rows
        }
    };
    let mut rows = rows.into_iter().filter(|(_, r)| !r.iter().all(String::is_empty));
    let (_, columns) = rows.next().ok_or_else(|| Error::Input("the file is empty".into()))?;
    let mut table = Table { columns, ..Table::default() };
    for (line, row) in rows {
        if row.len() != table.columns.len() {
            table.skipped.push(format!("line {line}: {} columns instead of {}", row.len(), table.columns.len()));
            continue;
        }
        table.rows.push((line, row));
    }
    Ok(table)
}

fn json_lines(text: &str) -> Result<Table> {
    let mut table = Table::default();
    let mut objects = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line) {
            Ok(o) => {
                // every key any line has (a missing one is an empty cell)
                for k in o.keys() {
                    if !table.columns.contains(k) {
                        table.columns.push(k.clone());
                    }
                }
                objects.push((i + 1, o));
            }
            Err(e) => table.skipped.push(format!("line {}: not a JSON object ({})", i + 1, clipped(&e.to_string()))),
        }
    }
    for (line, o) in objects {
        let cell = |c: &String| match o.get(c) {
            Some(serde_json::Value::String(s)) => Some(s.trim().to_string()),
            Some(serde_json::Value::Null) | None => None,
            Some(v) => Some(v.to_string()),
        };
        let row: Vec<Option<String>> = table.columns.iter().map(cell).collect();
        // a missing key is an empty cell: the column map decides whether it matters
        table.rows.push((line, row.into_iter().map(Option::unwrap_or_default).collect()));
    }
    if table.columns.is_empty() {
        let why = table.skipped.first().cloned().unwrap_or_default();
        return Err(Error::Input(format!("the file has no JSON object lines ({why})")));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_keeps_stray_quotes_and_reports_short_rows_by_line() {
        let t =
            Table::parse("\u{feff}sentence\tlabel\nit 's \"great\tstuff\t1\nfine film\t1\nshort\n\nbad \" movie\t0", Format::Tsv).unwrap();
        assert_eq!(t.columns, ["sentence", "label"]);
        assert_eq!(t.rows, [(3, vec!["fine film".to_string(), "1".into()]), (6, vec!["bad \" movie".into(), "0".into()])]);
        assert_eq!(t.skipped, ["line 2: 3 columns instead of 2", "line 4: 1 columns instead of 2"]);
    }

    #[test]
    fn csv_reads_quoted_commas_and_json_lines_any_key_order() {
        let t = Table::parse("text,label\n\"a, b\",pos\n\"say \"\"hi\"\"\",neg\n", Format::Csv).unwrap();
        assert_eq!(t.rows[0].1, ["a, b", "pos"]);
        assert_eq!(t.rows[1].1, ["say \"hi\"", "neg"]);
        let j = Table::parse(
            "{\"text\": \"x\", \"label\": 2}\nnot json\n{\"label\": 0.5, \"text\": \"y\", \"extra\": true}\n",
            Format::JsonLines,
        )
        .unwrap();
        assert_eq!(j.columns, ["label", "text", "extra"]);
        assert_eq!(j.rows, [(1, vec!["2".to_string(), "x".into(), String::new()]), (3, vec!["0.5".into(), "y".into(), "true".into()])]);
        assert!(j.skipped[0].starts_with("line 2: not a JSON object"));
        assert_eq!(Format::of_name("Data.JSONL"), Some(Format::JsonLines));
        assert!(Table::parse("  \n", Format::Csv).is_err());
        assert!(j.column("labels").unwrap_err().to_string().contains("no column \"labels\""));
    }
}

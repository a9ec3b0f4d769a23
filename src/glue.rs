//! GLUE-style pair-classification TSV files (MRPC's layout):
//! `label<TAB>id1<TAB>id2<TAB>sentence 1<TAB>sentence 2`, with a header row
//! first (GLUE's own files) or without one (then line 1 is data: a first line
//! whose label is 0 or 1 and whose ids are numbers is read as a row).
//!
//! Real files have a UTF-8 byte-order mark, stray `"` characters (so: split
//! on TAB only, no quoting) and sometimes no final newline. A malformed row is
//! reported with its line number and skipped, never guessed at.

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Example {
    pub label: u8,
    pub sentence1: String,
    pub sentence2: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    pub examples: Vec<Example>,
    /// `line N: why` for every row that was skipped.
    pub skipped: Vec<String>,
    /// Whether line 1 was a header (GLUE's files have one).
    pub has_header: bool,
}

impl Dataset {
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let Some(first) = text.split('\n').next().filter(|l| !l.trim().is_empty()) else {
            return Err(Error::Input("the TSV file is empty".into()));
        };
        let first_cols: Vec<&str> = first.trim_end_matches('\r').split('\t').collect();
        if first_cols.len() != 5 {
            return Err(Error::Input(format!(
                "the first line has {} columns; a GLUE pair TSV has 5 (label, id, id, sentence 1, sentence 2)",
                first_cols.len()
            )));
        }
        let numeric = |c: &str| !c.trim().is_empty() && c.trim().chars().all(|ch| ch.is_ascii_digit());
        let has_header = !(matches!(first_cols[0].trim(), "0" | "1") && numeric(first_cols[1]) && numeric(first_cols[2]));
        let lines = text.split('\n').enumerate().skip(usize::from(has_header));
        let mut d = Dataset { has_header, ..Dataset::default() };
        for (i, line) in lines {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let n = i + 1;
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() != 5 {
                d.skipped.push(format!("line {n}: {} columns instead of 5", cols.len()));
                continue;
            }
            let label = match cols[0].trim() {
                "0" => 0,
                "1" => 1,
                other => {
                    d.skipped.push(format!("line {n}: label {other:?} is not 0 or 1"));
                    continue;
                }
            };
            let (s1, s2) = (cols[3].trim(), cols[4].trim());
            if s1.is_empty() || s2.is_empty() {
                d.skipped.push(format!("line {n}: an empty sentence"));
                continue;
            }
            d.examples.push(Example { label, sentence1: s1.to_string(), sentence2: s2.to_string() });
        }
        if d.examples.is_empty() {
            let why = d.skipped.first().map(|s| format!(" (first problem: {s})")).unwrap_or_default();
            return Err(Error::Input(format!("the TSV file has no usable rows{why}")));
        }
        Ok(d)
    }

    pub fn positives(&self) -> usize {
        self.examples.iter().filter(|e| e.label == 1).count()
    }

    /// Accuracy of always answering the more frequent label.
    pub fn majority_accuracy(&self) -> f64 {
        let p = self.positives();
        p.max(self.examples.len() - p) as f64 / self.examples.len() as f64
    }

    /// The pairs as the task module's examples (MRPC's labels are its class ids).
    pub fn texts(examples: &[Example]) -> crate::task::Examples {
        let text = |e: &Example| crate::task::TextExample {
            text: e.sentence1.clone(),
            pair: Some(e.sentence2.clone()),
            target: crate::task::Target::Class(u32::from(e.label)),
        };
        crate::task::Examples::Texts(examples.iter().map(text).collect())
    }

    pub fn labels(&self) -> Vec<u32> {
        self.examples.iter().map(|e| u32::from(e.label)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "\u{feff}Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n";

    #[test]
    fn parses_bom_quotes_and_a_missing_final_newline() {
        let text = format!("{HEADER}1\t1\t2\tHe said \"no.\tShe said \"yes\"\r\n0\t3\t4\tA b\tC d");
        let d = Dataset::parse(&text).unwrap();
        assert_eq!(d.examples.len(), 2);
        assert_eq!(d.examples[0].sentence1, "He said \"no.");
        assert_eq!(d.examples[0].sentence2, "She said \"yes\"");
        assert_eq!(d.examples[1].label, 0);
        assert!(d.skipped.is_empty());
    }

    #[test]
    fn malformed_rows_are_skipped_with_their_line_numbers() {
        let text = format!("{HEADER}1\t1\t2\ta\tb\n2\t1\t2\ta\tb\n1\t1\t2\tonly four\n\n0\t1\t2\t \tb\n0\t5\t6\tc\td\n");
        let d = Dataset::parse(&text).unwrap();
        assert_eq!(d.examples.len(), 2);
        assert_eq!(d.skipped, vec!["line 3: label \"2\" is not 0 or 1", "line 4: 4 columns instead of 5", "line 6: an empty sentence"]);
        assert!((d.majority_accuracy() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn unusable_files_are_errors() {
        assert!(Dataset::parse("").unwrap_err().to_string().contains("empty"));
        let e = Dataset::parse("a\tb\tc\n1\t2\t3\n").unwrap_err().to_string();
        assert!(e.contains("first line has 3 columns"), "{e}");
        let e = Dataset::parse(&format!("{HEADER}7\t1\t2\ta\tb\n")).unwrap_err().to_string();
        assert!(e.contains("no usable rows") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn a_file_without_a_header_keeps_its_first_row() {
        let with = Dataset::parse(&format!("{HEADER}1\t11\t12\ta b\tc d\n0\t13\t14\te\tf\n")).unwrap();
        let without = Dataset::parse("1\t11\t12\ta b\tc d\n0\t13\t14\te\tf\n").unwrap();
        assert!(with.has_header && !without.has_header);
        assert_eq!(with.examples, without.examples);
        assert_eq!(without.examples.len(), 2);
        // a header whose first column happens to be "1" but whose ids are not numbers is still a header
        let odd = Dataset::parse("1\tid\tid\ts1\ts2\n0\t1\t2\ta\tb\n").unwrap();
        assert!(odd.has_header);
        assert_eq!(odd.examples.len(), 1);
    }

    #[test]
    fn reads_the_committed_glue_fixture() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/glue-tiny");
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let train = Dataset::parse(&read("train.tsv")).unwrap();
        let dev = Dataset::parse(&read("dev.tsv")).unwrap();
        assert!(train.has_header && dev.has_header);
        assert_eq!((train.examples.len(), train.positives()), (240, 160));
        assert_eq!((dev.examples.len(), dev.positives()), (60, 41));
        assert!(train.skipped.is_empty() && dev.skipped.is_empty());
        assert!((dev.majority_accuracy() - 41.0 / 60.0).abs() < 1e-12);
    }
}

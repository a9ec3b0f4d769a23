//! CoNLL-style token files: one word a line, its tag in the last
//! whitespace-separated column (`word POS chunk TAG` or `word TAG`), a blank
//! line between sentences. `-DOCSTART-` lines and their blank line are
//! skipped, as every reader of CoNLL-2003 does.

use crate::error::{Error, Result};

/// A sentence's words and their tags, as the file spells them.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggedSentence {
    pub words: Vec<String>,
    pub tags: Vec<String>,
}

/// The sentences of a file, and `line N: why` for each line skipped.
pub fn parse(text: &str) -> Result<(Vec<TaggedSentence>, Vec<String>)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sentences = Vec::new();
    let mut skipped = Vec::new();
    let mut current = TaggedSentence { words: Vec::new(), tags: Vec::new() };
    let mut end = |current: &mut TaggedSentence| {
        if !current.words.is_empty() {
            sentences.push(std::mem::replace(current, TaggedSentence { words: Vec::new(), tags: Vec::new() }));
        }
    };
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[..] {
            [] => end(&mut current),
            ["-DOCSTART-", ..] => end(&mut current),
            [_] => skipped.push(format!("line {}: a word without a tag", i + 1)),
            [word, .., tag] => {
                current.words.push(word.to_string());
                current.tags.push(tag.to_string());
            }
        }
    }
    end(&mut current);
    if sentences.is_empty() {
        let why = skipped.first().map(|s| format!(" (first problem: {s})")).unwrap_or_default();
        return Err(Error::Input(format!(
            "the file has no tagged sentences: one `word … TAG` a line, a blank line between sentences{why}"
        )));
    }
    Ok((sentences, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_end_at_blank_lines_and_tags_are_the_last_column() {
        let text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\nPeter B-PER\nlonely\nBlackburn I-PER\n";
        let (s, skipped) = parse(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].words, ["EU", "rejects"]);
        assert_eq!(s[0].tags, ["B-ORG", "O"]);
        assert_eq!(s[1].words, ["Peter", "Blackburn"]);
        assert_eq!(skipped, ["line 8: a word without a tag"]);
        assert!(parse("\n\n").unwrap_err().to_string().contains("no tagged sentences"));
    }
}

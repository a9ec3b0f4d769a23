//! A small template step for our WGSL files: named constants substituted
//! (`HEAD_DIM`, tile sizes) and loops unrolled in the text, so inner loops
//! index private arrays with literals. Unrolled text is what lets a driver
//! keep accumulators in registers: WGSL loops get bounds checks and loop
//! counters added (wgpu's `force_loop_bounding`, Tint's robustness) that stop
//! them being unrolled, and a non-literal index into a private array is
//! clamped on every access.
//!
//! The only syntax: a block between `//#unroll NAME FROM..TO` and `//#end`
//! is repeated for NAME = FROM .. TO-1, with `{NAME}` in it replaced by the
//! value. Blocks nest. `FROM` and `TO` may be constants' names.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// `src` with every `(name, value)` substituted as a whole word, then unrolled.
pub fn expand(src: &str, constants: &[(&str, usize)]) -> Result<String> {
    let values: HashMap<&str, usize> = constants.iter().copied().collect();
    let substituted: Vec<String> = src.lines().map(|l| substitute_words(l, &values)).collect();
    let mut out = Vec::new();
    let mut lines = substituted.iter().map(String::as_str);
    unroll(&mut lines, &[], &mut out, &values, false)?;
    Ok(out.join("\n"))
}

/// Replaces whole-word occurrences of the constants' names.
fn substitute_words(line: &str, values: &HashMap<&str, usize>) -> String {
    let mut out = String::with_capacity(line.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match values.get(word.as_str()) {
            Some(v) => out.push_str(&v.to_string()),
            None => out.push_str(word),
        }
        word.clear();
    };
    for c in line.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn bound(s: &str, values: &HashMap<&str, usize>) -> Result<usize> {
    let s = s.trim();
    s.parse().ok().or_else(|| values.get(s).copied()).ok_or_else(|| Error::Gpu(format!("WGSL template: unknown bound {s:?}")))
}

/// Copies lines to `out` until the matching `//#end` (when `nested`), expanding
/// inner blocks; `{name}` placeholders of enclosing loops are filled in.
fn unroll<'a>(
    lines: &mut impl Iterator<Item = &'a str>,
    vars: &[(String, usize)],
    out: &mut Vec<String>,
    values: &HashMap<&str, usize>,
    nested: bool,
) -> Result<()> {
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t == "//#end" {
            return if nested { Ok(()) } else { Err(Error::Gpu("WGSL template: //#end without //#unroll".into())) };
        }
        if let Some(spec) = t.strip_prefix("//#unroll ") {
            let (name, range) = spec.split_once(' ').ok_or_else(|| Error::Gpu(format!("WGSL template: bad {t:?}")))?;
            let (from, to) = range.split_once("..").ok_or_else(|| Error::Gpu(format!("WGSL template: bad range in {t:?}")))?;
            let (from, to) = (bound(from, values)?, bound(to, values)?);
            // collect the block once, then emit it per value
            let mut block = Vec::new();
            let mut depth = 0;
            let mut closed = false;
            for l in lines.by_ref() {
                let lt = l.trim();
                if lt.starts_with("//#unroll ") {
                    depth += 1;
                } else if lt == "//#end" {
                    if depth == 0 {
                        closed = true;
                        break;
                    }
                    depth -= 1;
                }
                block.push(l);
            }
            if !closed {
                return Err(Error::Gpu(format!("WGSL template: {t:?} without //#end")));
            }
            for v in from..to {
                let mut inner = vars.to_vec();
                inner.push((name.to_string(), v));
                let mut it = block.iter().copied().chain(std::iter::once("//#end"));
                unroll(&mut it, &inner, out, values, true)?;
            }
            continue;
        }
        let mut l = line.to_string();
        for (name, v) in vars {
            l = l.replace(&format!("{{{name}}}"), &v.to_string());
        }
        out.push(l);
    }
    if nested {
        return Err(Error::Gpu("WGSL template: //#unroll without //#end".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_whole_words_and_unrolls_nested_blocks() {
        let src = "const N: u32 = N;\nlet NN = 1;\n//#unroll i 0..2\n//#unroll j 1..N\nacc[{i}][{j}] += 1.0;\n//#end\n//#end\ndone();";
        let out = expand(src, &[("N", 3)]).unwrap();
        assert_eq!(
            out,
            "const 3: u32 = 3;\nlet NN = 1;\nacc[0][1] += 1.0;\nacc[0][2] += 1.0;\nacc[1][1] += 1.0;\nacc[1][2] += 1.0;\ndone();"
        );
    }

    #[test]
    fn unbalanced_templates_are_errors() {
        assert!(expand("//#unroll i 0..2\nx", &[]).is_err());
        assert!(expand("x\n//#end", &[]).is_err());
        assert!(expand("//#unroll i 0..M\n//#end", &[]).is_err());
    }
}

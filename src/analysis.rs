//! What the explorer computes from embeddings: cosine similarities, nearest
//! neighbours and a 2-D PCA map. Plain Rust, shared by the page and tests.

/// Cosine similarity of every pair of vectors: an `n × n` row-major matrix.
pub fn cosine_matrix(vectors: &[Vec<f32>]) -> Vec<f32> {
    let norms: Vec<f32> = vectors.iter().map(|v| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12)).collect();
    let n = vectors.len();
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let dot: f32 = vectors[i].iter().zip(&vectors[j]).map(|(a, b)| a * b).sum();
            m[i * n + j] = if i == j { 1.0 } else { dot / (norms[i] * norms[j]) };
        }
    }
    m
}

/// The other rows of a similarity matrix, most similar first.
pub fn nearest(similarity: &[f32], n: usize, of: usize) -> Vec<(usize, f32)> {
    let mut others: Vec<(usize, f32)> = (0..n).filter(|&j| j != of).map(|j| (j, similarity[of * n + j])).collect();
    others.sort_by(|a, b| b.1.total_cmp(&a.1));
    others
}

/// Projects points onto their first two principal components. Works on the
/// `n × n` Gram matrix of the centred points (n is small: sentences or
/// tokens on screen), with power iteration and deflation. Signs are fixed so
/// the largest coordinate of each axis is positive, so the map does not flip
/// between runs. Fewer than two distinct points give zeros on missing axes.
pub fn pca_2d(points: &[Vec<f32>]) -> Pca {
    let n = points.len();
    if n == 0 {
        return Pca { coords: Vec::new(), explained: [0.0; 2] };
    }
    let mut gram = centred_gram(points);
    let total: f64 = (0..n).map(|i| gram[i * n + i]).sum();
    let mut explained = [0.0f64; 2];
    let mut coords = vec![[0.0f32; 2]; n];
    for axis in 0..2 {
        // power iteration from a fixed, non-symmetric start
        let mut u: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 * 0.37).collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let next: Vec<f64> = (0..n).map(|i| (0..n).map(|j| gram[i * n + j] * u[j]).sum()).collect();
            let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm < 1e-20 {
                lambda = 0.0;
                break;
            }
            u = next.iter().map(|x| x / norm).collect();
            lambda = norm;
        }
        if lambda <= 1e-12 {
            break;
        }
        explained[axis] = lambda / total;
        let biggest = u.iter().copied().fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
        let sign = if biggest < 0.0 { -1.0 } else { 1.0 };
        for i in 0..n {
            coords[i][axis] = (sign * u[i] * lambda.sqrt()) as f32;
        }
        // deflate: remove this component before finding the next
        for i in 0..n {
            for j in 0..n {
                gram[i * n + j] -= lambda * u[i] * u[j];
            }
        }
    }
    Pca { coords, explained }
}

/// `[n, n]` inner products of the points after their mean is taken away (in f64).
fn centred_gram(points: &[Vec<f32>]) -> Vec<f64> {
    let n = points.len();
    let d = points.first().map_or(0, Vec::len);
    let mean: Vec<f64> = (0..d).map(|k| points.iter().map(|p| p[k] as f64).sum::<f64>() / n as f64).collect();
    let centred: Vec<Vec<f64>> = points.iter().map(|p| p.iter().zip(&mean).map(|(x, m)| *x as f64 - m).collect()).collect();
    let mut gram = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let g: f64 = centred[i].iter().zip(&centred[j]).map(|(a, b)| a * b).sum();
            gram[i * n + j] = g;
            gram[j * n + i] = g;
        }
    }
    gram
}

/// Linear CKA (Kornblith et al. 2019) between two representations of the
/// same `n` examples (a row each, widths may differ): ⟨K, L⟩ / (‖K‖ ‖L‖) of
/// their centred Gram matrices, which equals ‖YᵀX‖² / (‖XᵀX‖ ‖YᵀY‖) of the
/// centred rows. 1 when one is the other rotated or scaled; `None` when either
/// has no variance (or fewer than two examples).
pub fn linear_cka(x: &[Vec<f32>], y: &[Vec<f32>]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let (k, l) = (centred_gram(x), centred_gram(y));
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
    let norms = dot(&k, &k).sqrt() * dot(&l, &l).sqrt();
    (norms > 0.0).then(|| dot(&k, &l) / norms)
}

/// Points on their first two principal components.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pca {
    pub coords: Vec<[f32; 2]>,
    /// The share of the total variance each axis explains (0..=1).
    pub explained: [f64; 2],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_matrix_is_symmetric_with_ones_on_the_diagonal() {
        let v = vec![vec![1.0, 0.0], vec![1.0, 1.0], vec![-2.0, 0.5]];
        let m = cosine_matrix(&v);
        for i in 0..3 {
            assert_eq!(m[i * 3 + i], 1.0);
            for j in 0..3 {
                assert_eq!(m[i * 3 + j], m[j * 3 + i]);
            }
        }
        assert!((m[1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert_eq!(nearest(&m, 3, 0)[0].0, 1);
    }

    #[test]
    fn pca_recovers_a_line_and_a_plane() {
        // points on a line in 3-D: all spread on the first axis, none on the second
        let line: Vec<Vec<f32>> = (0..5).map(|i| vec![i as f32, 2.0 * i as f32, -(i as f32)]).collect();
        let pca = pca_2d(&line);
        assert!((pca.explained[0] - 1.0).abs() < 1e-9 && pca.explained[1] < 1e-9, "{:?}", pca.explained);
        let p = pca.coords;
        let spread = |a: usize| p.iter().map(|c| c[a] * c[a]).sum::<f32>();
        assert!(spread(1) < 1e-6 && spread(0) > 1.0);
        // distances along the line are preserved: neighbours √6 apart
        assert!(((p[1][0] - p[0][0]).abs() - 6f32.sqrt()).abs() < 1e-4);
        // a plane: both axes carry variance, and the first carries more
        let plane: Vec<Vec<f32>> = vec![vec![0.0, 0.0, 0.0], vec![4.0, 0.0, 0.0], vec![0.0, 1.0, 0.0], vec![4.0, 1.0, 0.0]];
        let pca = pca_2d(&plane);
        // variances 4 and 0.25 along x and y
        assert!((pca.explained[0] - 4.0 / 4.25).abs() < 1e-6 && (pca.explained[1] - 0.25 / 4.25).abs() < 1e-6, "{:?}", pca.explained);
        let p = pca.coords;
        let spread = |a: usize| p.iter().map(|c| c[a] * c[a]).sum::<f32>();
        assert!(spread(0) > spread(1) && spread(1) > 0.5);
        assert_eq!(pca_2d(&[vec![1.0, 2.0]]).coords, vec![[0.0, 0.0]]);
    }
}

/// A token among a batch's: its sentence and its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenAt {
    pub sentence: usize,
    pub token: usize,
}

/// One token's vector across the layers, against the same token elsewhere
/// and against every token at one layer (exBERT's search, over the batch).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WordInContext {
    pub word: String,
    pub at: TokenAt,
    /// Every other occurrence of the same token, with its cosine similarity
    /// to the word at each layer (0, the embeddings' output, … the last).
    pub occurrences: Vec<(TokenAt, Vec<f32>)>,
    /// The layer `nearest` is measured at.
    pub layer: usize,
    /// The tokens nearest to the word at `layer` (special tokens and itself
    /// left out), most similar first, with their text.
    pub nearest: Vec<(TokenAt, String, f32)>,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    dot / (na.sqrt() * nb.sqrt()).max(1e-12)
}

/// `of`'s similarities across `states` (every layer's `[batch, seq, hidden]`,
/// as a forward keeps them) to the same token elsewhere, and its `k` nearest
/// tokens at `layer`; `tokens` holds each sentence's tokens (padding cut off).
/// `None` when `of` or `layer` is outside them.
pub fn word_in_context(
    states: &[Vec<f32>],
    seq: usize,
    hidden: usize,
    tokens: &[Vec<String>],
    of: TokenAt,
    layer: usize,
    k: usize,
) -> Option<WordInContext> {
    let word = tokens.get(of.sentence)?.get(of.token)?.clone();
    let vector = |l: usize, at: TokenAt| &states[l][(at.sentence * seq + at.token) * hidden..][..hidden];
    if layer >= states.len() || states.iter().any(|s| s.len() < tokens.len() * seq * hidden) {
        return None;
    }
    let all = || tokens.iter().enumerate().flat_map(|(sentence, t)| (0..t.len().min(seq)).map(move |token| TokenAt { sentence, token }));
    let occurrences = all()
        .filter(|&at| at != of && tokens[at.sentence][at.token] == word)
        .map(|at| (at, (0..states.len()).map(|l| cosine(vector(l, of), vector(l, at))).collect()))
        .collect();
    let special = |t: &str| t.starts_with('[') && t.ends_with(']');
    let mut nearest: Vec<(TokenAt, String, f32)> = all()
        .filter(|&at| at != of && !special(&tokens[at.sentence][at.token]))
        .map(|at| (at, tokens[at.sentence][at.token].clone(), cosine(vector(layer, of), vector(layer, at))))
        .collect();
    nearest.sort_by(|a, b| b.2.total_cmp(&a.2));
    nearest.truncate(k);
    Some(WordInContext { word, at: of, occurrences, layer, nearest })
}

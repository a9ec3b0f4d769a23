//! The numbers behind the page's charts, kept out of the view code so they
//! can be tested natively: axis ticks, smoothing, and robust colour ranges.

/// About `count` round tick values (1, 2 or 5 × 10ⁿ apart) covering `lo ..= hi`.
pub fn nice_ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || count == 0 {
        return Vec::new();
    }
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, lo + 0.5) };
    let raw = (hi - lo) / count as f64;
    let exponent = raw.log10().floor() as i32;
    let magnitude = 10f64.powi(exponent);
    let m = [1.0, 2.0, 5.0, 10.0].into_iter().find(|m| m * magnitude >= raw).unwrap_or(10.0);
    let step = m * magnitude;
    // i·m scaled by a power of ten, divided when below 1, so 0.6 prints as 0.6 (and -0 becomes 0)
    let value = |i: i64| if exponent < 0 { i as f64 * m / 10f64.powi(-exponent) } else { i as f64 * step } + 0.0;
    ((lo / step).ceil() as i64..=(hi / step).floor() as i64).map(value).collect()
}

/// A tick's label: as few decimals as its spacing needs.
pub fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10()).ceil() as usize };
    format!("{v:.decimals$}")
}

/// TensorBoard's smoothing: an exponential moving average with weight `w`
/// (0 = raw), debiased so the first points are not pulled towards zero.
pub fn ema(values: &[f32], w: f32) -> Vec<f32> {
    let w = w.clamp(0.0, 0.999);
    let mut avg = 0.0f64;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            avg = w as f64 * avg + (1.0 - w as f64) * v as f64;
            (avg / (1.0 - (w as f64).powi(i as i32 + 1))) as f32
        })
        .collect()
}

/// The `q`-quantile (0..=1) of |values| (nearest rank), 0 for no values.
pub fn abs_quantile(values: &[f32], q: f64) -> f32 {
    let mut a: Vec<f32> = values.iter().map(|v| v.abs()).filter(|v| v.is_finite()).collect();
    if a.is_empty() {
        return 0.0;
    }
    let k = ((q.clamp(0.0, 1.0) * a.len() as f64).ceil() as usize).clamp(1, a.len()) - 1;
    *a.select_nth_unstable_by(k, f32::total_cmp).1
}

/// How a heatmap of hidden states maps values to colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeatmapRange {
    /// Symmetric around 0 up to the 99th percentile of |x|; the rest saturate.
    Clipped,
    /// Symmetric around 0 up to the largest |x|.
    Full,
    /// Every dimension (column) divided by its own largest |x|.
    PerDimension,
}

/// `rows × cols` values as the heatmap draws them, in −1 ..= 1, and the |x|
/// that 1 stands for (`None` for per-dimension scaling, where it varies).
pub fn heatmap_values(values: &[f32], rows: usize, cols: usize, range: HeatmapRange) -> (Vec<f32>, Option<f32>) {
    let values = &values[..(rows * cols).min(values.len())];
    let scaled = |max: f32| values.iter().map(|v| (v / max.max(1e-12)).clamp(-1.0, 1.0)).collect();
    match range {
        HeatmapRange::Clipped => {
            let max = abs_quantile(values, 0.99);
            (scaled(max), Some(max))
        }
        HeatmapRange::Full => {
            let max = abs_quantile(values, 1.0);
            (scaled(max), Some(max))
        }
        HeatmapRange::PerDimension => {
            let col_max: Vec<f32> = (0..cols).map(|c| (0..rows).map(|r| values[r * cols + c].abs()).fold(0.0, f32::max)).collect();
            let v = values.iter().enumerate().map(|(i, v)| (v / col_max[i % cols].max(1e-12)).clamp(-1.0, 1.0)).collect();
            (v, None)
        }
    }
}

/// Dimensions holding a value beyond `limit` in absolute value, with the
/// largest such value and the row it is in, largest first (at most `most`).
pub fn outlier_dims(values: &[f32], rows: usize, cols: usize, limit: f32, most: usize) -> Vec<(usize, f32, usize)> {
    let mut out: Vec<(usize, f32, usize)> = (0..cols)
        .filter_map(|c| {
            let (r, v) = (0..rows).map(|r| (r, values[r * cols + c])).max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))?;
            (v.abs() > limit).then_some((c, v, r))
        })
        .collect();
    out.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    out.truncate(most);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        assert_eq!(nice_ticks(0.0, 390.0, 4), vec![0.0, 100.0, 200.0, 300.0]);
        let t = nice_ticks(0.3137, 0.7291, 4);
        assert!(t.iter().all(|&v| (0.3137..=0.7291).contains(&v)) && t.len() >= 2, "{t:?}");
        assert_eq!(nice_ticks(2.0, 2.0, 4), vec![1.5, 2.0, 2.5], "a flat range still gets ticks around it");
        assert!(nice_ticks(f64::NAN, 1.0, 4).is_empty());
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(300.0, 100.0), "300");
    }

    #[test]
    fn ema_is_debiased_and_smooths() {
        assert_eq!(ema(&[2.0, 2.0, 2.0], 0.9), vec![2.0, 2.0, 2.0]);
        assert_eq!(ema(&[1.0, 3.0], 0.0), vec![1.0, 3.0]);
        let s = ema(&[0.0, 10.0, 0.0, 10.0, 0.0, 10.0], 0.6);
        assert!(s[5] > 3.0 && s[5] < 7.0, "{s:?}");
    }

    #[test]
    fn one_outlier_does_not_set_the_clipped_scale() {
        // 99 small values and one large one, as [CLS]'s dimension 99 in MiniLM
        let mut v: Vec<f32> = (0..200).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
        v[99] = 5.83;
        let (clipped, max) = heatmap_values(&v, 2, 100, HeatmapRange::Clipped);
        assert!((max.unwrap() - 0.3).abs() < 1e-6, "{max:?}");
        assert_eq!(clipped[99], 1.0);
        let (full, max) = heatmap_values(&v, 2, 100, HeatmapRange::Full);
        assert_eq!(max, Some(5.83));
        assert!(full.iter().filter(|x| x.abs() < 0.1).count() > 150);
        let (per, none) = heatmap_values(&v, 2, 100, HeatmapRange::PerDimension);
        assert!(none.is_none() && per.iter().all(|x| x.abs() <= 1.0));
        assert_eq!(outlier_dims(&v, 2, 100, 0.3, 5), vec![(99, 5.83, 0)]);
    }
}

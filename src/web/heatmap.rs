//! Heatmaps on a canvas: one pixel per cell through ImageData, scaled up by
//! CSS (`image-rendering: pixelated`), so 30 tokens × 768 dims draw at once.

use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};

/// How values map to colours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// Blue (negative) – white – red (positive), symmetric around 0 up to ±max.
    Diverging { max: f32 },
    /// White (0) to dark violet (max), for probabilities.
    Sequential { max: f32 },
}

pub fn color(v: f32, scale: Scale) -> [u8; 3] {
    let lerp = |a: f32, b: f32, t: f32| (a + (b - a) * t).round().clamp(0.0, 255.0) as u8;
    match scale {
        Scale::Diverging { max } => {
            let t = (v / max.max(1e-12)).clamp(-1.0, 1.0);
            if t >= 0.0 {
                [lerp(255.0, 178.0, t), lerp(255.0, 24.0, t), lerp(255.0, 43.0, t)]
            } else {
                [lerp(255.0, 33.0, -t), lerp(255.0, 102.0, -t), lerp(255.0, 172.0, -t)]
            }
        }
        Scale::Sequential { max } => {
            let t = (v / max.max(1e-12)).clamp(0.0, 1.0);
            [lerp(255.0, 63.0, t), lerp(255.0, 0.0, t), lerp(255.0, 125.0, t)]
        }
    }
}

/// CSS colour for a cell in an HTML table.
pub fn css_color(v: f32, scale: Scale) -> String {
    let [r, g, b] = color(v, scale);
    format!("rgb({r},{g},{b})")
}

/// Draws a `rows × cols` matrix (row-major) onto `canvas`.
pub fn draw(canvas: &HtmlCanvasElement, rows: usize, cols: usize, values: &[f32], scale: Scale) {
    if rows == 0 || cols == 0 {
        return;
    }
    canvas.set_width(cols as u32);
    canvas.set_height(rows as u32);
    let mut rgba = Vec::with_capacity(rows * cols * 4);
    for &v in &values[..rows * cols] {
        let [r, g, b] = color(v, scale);
        rgba.extend_from_slice(&[r, g, b, 255]);
    }
    let Ok(Some(ctx)) = canvas.get_context("2d") else { return };
    let ctx: CanvasRenderingContext2d = ctx.unchecked_into();
    if let Ok(img) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), cols as u32, rows as u32) {
        let _ = ctx.put_image_data(&img, 0.0, 0.0);
    }
}

/// The cell under the mouse, from the event's position in the displayed canvas.
pub fn cell_at(ev: &web_sys::MouseEvent, rows: usize, cols: usize) -> Option<(usize, usize)> {
    let canvas: HtmlCanvasElement = ev.target()?.dyn_into().ok()?;
    let (w, h) = (canvas.client_width() as f64, canvas.client_height() as f64);
    if w <= 0.0 || h <= 0.0 {
        return None;
    }
    let col = (ev.offset_x() as f64 / w * cols as f64).floor() as usize;
    let row = (ev.offset_y() as f64 / h * rows as f64).floor() as usize;
    (row < rows && col < cols).then_some((row, col))
}

/// A colour bar for `scale`: the gradient with its end and middle values.
pub fn colour_bar(scale: Scale, labels: [String; 3], testid: &'static str) -> impl leptos::IntoView {
    use leptos::prelude::*;
    let stops = match scale {
        Scale::Diverging { max } => [-max, 0.0, max],
        Scale::Sequential { max } => [0.0, max / 2.0, max],
    };
    let gradient = format!(
        "linear-gradient(to right, {}, {}, {})",
        css_color(stops[0], scale),
        css_color(stops[1], scale),
        css_color(stops[2], scale)
    );
    let [lo, mid, hi] = labels;
    let label = format!("colour scale from {lo} to {hi}");
    view! {
        <div class="colour-bar" data-testid=testid role="img" aria-label=label>
            <div class="gradient" style=format!("background:{gradient}")></div>
            <div class="labels"><span>{lo}</span><span>{mid}</span><span>{hi}</span></div>
        </div>
    }
}

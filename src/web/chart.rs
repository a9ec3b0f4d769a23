//! The training chart: loss per step (raw and smoothed) on a step axis with
//! epoch markers, validation loss, accuracy and F1 per epoch, the majority
//! baseline, and the values under the pointer. SVG, so it stays sharp.

use bertlab::charts::{ema, nice_ticks, tick_label};
use bertlab::finetune::Metrics;
use leptos::prelude::*;

const W: f64 = 640.0;
const H: f64 = 260.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 52.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;

/// A small triangle centred on (x, y): the F1 markers.
fn triangle(x: f64, y: f64) -> String {
    format!("{x},{} {},{} {},{}", y - 4.5, x + 4.0, y + 3.0, x - 4.0, y + 3.0)
}

/// Where a point lands: step and loss to pixels, accuracy on the right axis.
#[derive(Clone, Copy, PartialEq)]
struct Frame {
    steps: f64,
    loss_lo: f64,
    loss_hi: f64,
}

impl Frame {
    fn x(&self, step: f64) -> f64 {
        LEFT + step / self.steps.max(1.0) * (W - LEFT - RIGHT)
    }
    fn y(&self, loss: f64) -> f64 {
        H - BOTTOM - (loss - self.loss_lo) / (self.loss_hi - self.loss_lo).max(1e-9) * (H - TOP - BOTTOM)
    }
    fn y_accuracy(&self, a: f64) -> f64 {
        H - BOTTOM - a * (H - TOP - BOTTOM)
    }
}

fn polyline(points: impl Iterator<Item = (f64, f64)>) -> String {
    points.map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ")
}

/// At most about two points per horizontal pixel of the plot (a long run's
/// thousands of steps would otherwise redraw thousands of points per step):
/// every `stride`-th step and the last.
fn thinned(values: &[f32]) -> impl Iterator<Item = (usize, f32)> + '_ {
    let stride = values.len().div_ceil(2 * (W - LEFT - RIGHT) as usize).max(1);
    values.iter().copied().enumerate().filter(move |(i, _)| i % stride == 0 || i + 1 == values.len())
}

#[component]
pub fn LossChart(
    losses: RwSignal<Vec<f32>>,
    epochs: RwSignal<Vec<Metrics>>,
    /// Optimizer steps in one epoch (0 until a run says).
    #[prop(into)]
    steps_per_epoch: Signal<usize>,
    /// Steps the whole run will take (the x axis spans them).
    #[prop(into)]
    total_steps: Signal<usize>,
    #[prop(into)] baseline: Signal<Option<Metrics>>,
) -> impl IntoView {
    let smoothing = RwSignal::new(0.8f32);
    let hover = RwSignal::new(None::<usize>);
    let frame = Memo::new(move |_| {
        let l = losses.get();
        let e = epochs.get();
        let values = l.iter().map(|&v| v as f64).chain(e.iter().map(|m| m.loss)).filter(|v| v.is_finite());
        let hi = values.fold(0.0f64, f64::max);
        Frame { steps: total_steps.get().max(l.len()) as f64, loss_lo: 0.0, loss_hi: if hi > 0.0 { hi * 1.05 } else { 1.0 } }
    });
    let smoothed = Memo::new(move |_| ema(&losses.get(), smoothing.get()));
    let on_move = move |ev: leptos::ev::MouseEvent| {
        let Some(svg) = ev.current_target().and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok()) else { return };
        let width = svg.client_width() as f64;
        let n = losses.with_untracked(Vec::len);
        if width <= 0.0 || n == 0 {
            return;
        }
        let x = ev.offset_x() as f64 / width * W;
        let f = frame.get_untracked();
        let step = ((x - LEFT) / (W - LEFT - RIGHT) * f.steps).round();
        hover.set(Some((step.max(1.0) as usize).min(n) - 1));
    };
    let readout = move || {
        let i = hover.get()?;
        let (l, s) = (losses.with(|l| l.get(i).copied())?, smoothed.with(|s| s.get(i).copied())?);
        let per = steps_per_epoch.get();
        let epoch = if per > 0 { format!(" (epoch {:.2})", (i + 1) as f64 / per as f64) } else { String::new() };
        Some(format!("step {}{epoch}: loss {l:.4}, smoothed {s:.4}", i + 1))
    };
    view! {
        <div class="chart">
            <svg class="loss" viewBox=format!("0 0 {W} {H}") data-testid="loss-curve" role="img"
                aria-label="training loss per step, validation loss, accuracy and F1 per epoch"
                data-losses=move || serde_json::to_string(&losses.get()).unwrap_or_default()
                on:mousemove=on_move on:mouseleave=move |_| hover.set(None)>
                {move || {
                    let f = frame.get();
                    let loss_ticks = nice_ticks(f.loss_lo, f.loss_hi, 5);
                    let loss_step = loss_ticks.get(1).zip(loss_ticks.first()).map_or(1.0, |(b, a)| b - a);
                    // whole steps only (an empty chart had ticks at ±0.4 printed "0 0 0")
                    let step_ticks: Vec<f64> = nice_ticks(0.0, f.steps.max(1.0), 6).into_iter().filter(|t| t.fract() == 0.0).collect();
                    let step_step = step_ticks.get(1).zip(step_ticks.first()).map_or(1.0, |(b, a)| b - a);
                    view! {
                        <g class="grid">
                            {loss_ticks.iter().map(|&t| view! {
                                <line x1=LEFT x2=W - RIGHT y1=f.y(t) y2=f.y(t)/>
                                <text class="tick" x=LEFT - 6.0 y=f.y(t) + 4.0 text-anchor="end">{tick_label(t, loss_step)}</text>
                            }).collect_view()}
                            {step_ticks.iter().map(|&t| view! {
                                <text class="tick" x=f.x(t) y=H - BOTTOM + 16.0 text-anchor="middle">{tick_label(t, step_step.max(1.0))}</text>
                            }).collect_view()}
                            {[0.0, 0.25, 0.5, 0.75, 1.0].map(|a| view! {
                                <text class="tick accuracy" x=W - RIGHT + 6.0 y=f.y_accuracy(a) + 4.0>{format!("{:.0}%", a * 100.0)}</text>
                            }).into_iter().collect_view()}
                        </g>
                        <text class="axis-title" x=(LEFT + W - RIGHT) / 2.0 y=H - 6.0 text-anchor="middle">"optimizer step"</text>
                        <text class="axis-title" transform=format!("translate(12 {}) rotate(-90)", (TOP + H - BOTTOM) / 2.0) text-anchor="middle">"loss"</text>
                        <text class="axis-title accuracy" transform=format!("translate({} {}) rotate(90)", W - 8.0, (TOP + H - BOTTOM) / 2.0) text-anchor="middle">"validation accuracy / F1"</text>
                        // epoch boundaries
                        {move || {
                            let per = steps_per_epoch.get();
                            (per > 0).then(|| (1..).map(|e| e * per).take_while(|&s| s as f64 <= f.steps).map(|s| view! {
                                <line class="epoch" x1=f.x(s as f64) x2=f.x(s as f64) y1=TOP y2=H - BOTTOM/>
                            }).collect_view())
                        }}
                        {move || baseline.get().map(|b| view! {
                            <line class="baseline" x1=LEFT x2=W - RIGHT y1=f.y_accuracy(b.headline().1) y2=f.y_accuracy(b.headline().1)>
                                <title>{format!("majority baseline: accuracy {:.1}%", 100.0 * b.headline().1)}</title>
                            </line>
                        })}
                        <polyline class="raw" points=move || losses.with(|l| polyline(thinned(l).map(|(i, v)| (f.x((i + 1) as f64), f.y(v as f64)))))/>
                        <polyline class="smooth" points=move || smoothed.with(|l| polyline(thinned(l).map(|(i, v)| (f.x((i + 1) as f64), f.y(v as f64)))))/>
                        {move || {
                            let per = steps_per_epoch.get() as f64;
                            let e = epochs.get();
                            let at = |i: usize| f.x((i + 1) as f64 * per);
                            view! {
                                <polyline class="eval-accuracy" points=polyline(e.iter().enumerate().map(|(i, m)| (at(i), f.y_accuracy(m.headline().1))))/>
                                <polyline class="eval-f1" points=polyline(e.iter().enumerate().map(|(i, m)| (at(i), f.y_accuracy(m.f1().unwrap_or(0.0)))))/>
                                {e.iter().enumerate().map(|(i, m)| view! {
                                    <circle class="eval-loss" cx=at(i) cy=f.y(m.loss) r="4"><title>{format!("epoch {}: validation loss {:.4}", i + 1, m.loss)}</title></circle>
                                    <rect class="eval-accuracy" x=at(i) - 3.5 y=f.y_accuracy(m.headline().1) - 3.5 width="7" height="7">
                                        <title>{format!("epoch {}: validation accuracy {:.2}%", i + 1, 100.0 * m.headline().1)}</title>
                                    </rect>
                                    <polygon class="eval-f1" points=triangle(at(i), f.y_accuracy(m.f1().unwrap_or(0.0)))>
                                        <title>{format!("epoch {}: validation F1 {:.4}", i + 1, m.f1().unwrap_or(0.0))}</title>
                                    </polygon>
                                }).collect_view()}
                            }
                        }}
                        {move || hover.get().map(|i| view! { <line class="cursor" x1=f.x((i + 1) as f64) x2=f.x((i + 1) as f64) y1=TOP y2=H - BOTTOM/> })}
                    }
                }}
            </svg>
            <div class="legend">
                <span class="key raw">"loss per step"</span>
                <span class="key smooth">"smoothed (EMA)"</span>
                <span class="key eval-loss">"validation loss"</span>
                <span class="key eval-accuracy">"validation accuracy"</span>
                <span class="key eval-f1">"validation F1 (paraphrase)"</span>
                <span class="key baseline">"majority baseline (accuracy)"</span>
                <label>"smoothing "
                    <input type="range" min="0" max="0.99" step="0.01" data-testid="smoothing" aria-label="smoothing"
                        prop:value=move || smoothing.get().to_string()
                        on:input=move |ev| smoothing.set(event_target_value(&ev).parse().unwrap_or(0.8))/>
                </label>
            </div>
            <div class="hover" data-testid="loss-hover">{readout}</div>
        </div>
    }
}

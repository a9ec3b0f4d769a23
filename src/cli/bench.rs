//! `bertlab bench`: throughput tables. A benchmark, never a test: it prints
//! what it measures and asserts nothing.

use web_time::Instant;

use bertlab::config::BertConfig;
use bertlab::gpu::GpuContext;
use bertlab::kernels::matmul::{linear_cpu, Epilogue, MatmulKernel};
use bertlab::weights::BertWeights;
use bertlab::{AttentionRequest, BackendChoice, Batch, Engine, Model};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Model geometries: `minilm` (the default model's weights) and/or `bert-base` (random weights).
    #[arg(long, value_delimiter = ',', default_value = "minilm,bert-base")]
    models: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    batches: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "8,128")]
    seqs: Vec<usize>,
    /// Backends to measure: `gpu` (the adapter wgpu picks) and/or `cpu`.
    #[arg(long, value_delimiter = ',', default_value = "gpu,cpu")]
    backends: Vec<String>,
    /// Tokens (rows) of the matmul benchmark; 0 skips it.
    #[arg(long, default_value_t = 4096)]
    matmul_tokens: usize,
    /// Seconds to spend per measurement at least (after one warm-up run).
    #[arg(long, default_value_t = 1.0)]
    min_seconds: f64,
    /// Folder of the default model.
    #[arg(long, default_value_os_t = super::default_model_dir())]
    model_dir: std::path::PathBuf,
}

/// Runs `f` once to warm up, then until `min_seconds` have passed; ms per run.
fn time_ms(min_seconds: f64, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    f()?;
    let start = Instant::now();
    let mut runs = 0;
    while runs == 0 || start.elapsed().as_secs_f64() < min_seconds {
        f()?;
        runs += 1;
    }
    Ok(start.elapsed().as_secs_f64() * 1e3 / runs as f64)
}

pub fn run(args: BenchArgs) -> Result<(), String> {
    let mut weights = Vec::new();
    for m in &args.models {
        match m.as_str() {
            "minilm" => {
                let model = Model::from_dir(&args.model_dir).map_err(|e| e.to_string())?;
                weights.push(("all-MiniLM-L6-v2", model.weights));
            }
            "bert-base" => weights.push(("bert-base (random)", BertWeights::random(&BertConfig::bert_base(), 1))),
            other => return Err(format!("unknown model geometry {other:?} (minilm, bert-base)")),
        }
    }
    println!("| model | backend | batch × seq | ms / batch | sequences / s |");
    println!("|---|---|---|---|---|");
    for (name, w) in &weights {
        for backend in &args.backends {
            let choice = match backend.as_str() {
                "gpu" => BackendChoice::Gpu,
                "cpu" => BackendChoice::Cpu,
                other => return Err(format!("unknown backend {other:?} (gpu, cpu)")),
            };
            let mut engine = pollster::block_on(Engine::with_weights(name, w.clone(), None, choice)).map_err(|e| e.to_string())?;
            let label = engine.backend().to_string();
            for &s in &args.seqs {
                for &b in &args.batches {
                    let rows = (0..b).map(|r| ((0..s).map(|t| (1000 + 7 * t + r) as u32).collect(), vec![0; s])).collect();
                    let batch = Batch::from_rows(rows, 0).map_err(|e| e.to_string())?;
                    let ms = time_ms(args.min_seconds, || {
                        pollster::block_on(engine.forward(&batch, AttentionRequest::None)).map(|_| ()).map_err(|e| e.to_string())
                    })?;
                    println!("| {name} | {label} | {b} × {s} | {ms:.2} | {:.1} |", b as f64 * 1e3 / ms);
                }
            }
        }
    }
    if args.matmul_tokens > 0 {
        matmul_table(&args)?;
    }
    Ok(())
}

/// GFLOP/s of the matmul kernel (and of the CPU reference) on bert-base's Linear shapes.
fn matmul_table(args: &BenchArgs) -> Result<(), String> {
    let m = args.matmul_tokens;
    let shapes = [("QKV", 2304, 768), ("attention out", 768, 768), ("FFN in", 3072, 768), ("FFN out", 768, 3072)];
    println!();
    println!("| matmul (bert-base, {m} tokens) | m × n × k | backend | ms | GFLOP/s |");
    println!("|---|---|---|---|---|");
    let ctx = if args.backends.iter().any(|b| b == "gpu") {
        Some(pollster::block_on(GpuContext::new()).map_err(|e| e.to_string())?)
    } else {
        None
    };
    for (name, n, k) in shapes {
        let flops = 2.0 * m as f64 * n as f64 * k as f64;
        let x: Vec<f32> = (0..m * k).map(|i| ((i % 97) as f32 - 48.0) * 1e-2).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i % 89) as f32 - 44.0) * 1e-3).collect();
        let bias = vec![0.1f32; n];
        if let Some(ctx) = &ctx {
            let kernel = MatmulKernel::new(ctx);
            let (xb, wb, bb) = (ctx.storage_f32("x", &x), ctx.storage_f32("w", &w), ctx.storage_f32("b", &bias));
            let y = ctx.scratch("y", m * n);
            let reps = 10;
            let d: Vec<_> = (0..reps).map(|_| kernel.linear(ctx, &xb, m, &wb, &bb, &y, (n, k), Epilogue::None)).collect();
            let ms =
                time_ms(args.min_seconds, || pollster::block_on(ctx.run(&d, &[])).map(|_| ()).map_err(|e| e.to_string()))? / reps as f64;
            println!("| {name} | {m} × {n} × {k} | {} | {ms:.3} | {:.1} |", ctx.info.name, flops / ms / 1e6);
        }
        if args.backends.iter().any(|b| b == "cpu") {
            let ms = time_ms(0.0, || {
                linear_cpu(&x, &w, &bias, m, n, k, Epilogue::None);
                Ok(())
            })?;
            println!("| {name} | {m} × {n} × {k} | CPU reference | {ms:.3} | {:.1} |", flops / ms / 1e6);
        }
    }
    Ok(())
}

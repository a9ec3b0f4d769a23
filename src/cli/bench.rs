//! `bertlab bench`: throughput tables. A benchmark, never a test: it prints
//! what it measures (with the command, the machine and the date) and asserts
//! nothing. `--compare-pytorch` runs `bench/pytorch.py` on the same shapes
//! (PyTorch CPU beside our CPU path, PyTorch CUDA beside our GPU path).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use web_time::Instant;

use bertlab::config::BertConfig;
use bertlab::fast_cpu::{FastCpuEncoder, PackedLinear};
use bertlab::gpu::{GpuContext, ShaderChecks};
use bertlab::kernels::linear::{padded_rows, LinearKernel, LinearPath, XRows};
use bertlab::kernels::matmul::Epilogue;
use bertlab::weights::{BertWeights, Linear};
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
    model_dir: PathBuf,
    /// Also run PyTorch on the same shapes (bench/pytorch.py) with this Python.
    #[arg(long, num_args = 0..=1, default_missing_value = "python3", value_name = "PYTHON")]
    compare_pytorch: Option<String>,
    /// Also time each GPU kernel of one forward per shape (timestamp queries, where the adapter has them).
    #[arg(long)]
    profile: bool,
    /// wgpu's runtime checks in the GPU's shaders, each setting measured in turn:
    /// all (what the engine runs), no-bounds, no-loop-bounding, none.
    #[arg(long, value_delimiter = ',', default_value = "all", value_parser = parse_checks)]
    shader_checks: Vec<ShaderChecks>,
}

fn parse_checks(s: &str) -> Result<ShaderChecks, String> {
    let names: Vec<&str> = ShaderChecks::ALL.iter().map(|c| c.name()).collect();
    ShaderChecks::parse(s).ok_or_else(|| format!("{s:?}: one of {}", names.join(", ")))
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

/// The CPU's name and core count, for the table's caption.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| t.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{cpu}, {} cores", std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Today's date (UTC), from the system clock.
fn today() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    // days since 1970-01-01 to a civil date (Howard Hinnant's algorithm)
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let (d, m) = (doy - (153 * mp + 2) / 5 + 1, if mp < 10 { mp + 3 } else { mp - 9 });
    format!("{:04}-{m:02}-{d:02}", yoe + era * 400 + i64::from(m <= 2))
}

/// PyTorch's ms per batch by (model, batch, seq) on `device`, or why there are none.
fn pytorch(python: &str, device: &str, args: &BenchArgs, threads: usize) -> Result<HashMap<(String, usize, usize), f64>, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/pytorch.py");
    let join = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let out = Command::new(python)
        .arg(&script)
        .args(["--device", device, "--models", &args.models.join(","), "--batches", &join(&args.batches), "--seqs", &join(&args.seqs)])
        .args(["--threads", &threads.to_string(), "--min-seconds", &args.min_seconds.to_string(), "--model-dir"])
        .arg(&args.model_dir)
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("bench/pytorch.py failed").to_string());
    }
    let mut times = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("bench/pytorch.py: {e}"))?;
        let key = (
            v["model"].as_str().unwrap_or_default().to_string(),
            v["batch"].as_u64().unwrap_or(0) as usize,
            v["seq"].as_u64().unwrap_or(0) as usize,
        );
        times.insert(key, v["ms"].as_f64().unwrap_or(f64::NAN));
        eprintln!("pytorch {device}: {line}");
    }
    Ok(times)
}

/// Refuses settings that would allocate without bound or never end.
fn check(args: &BenchArgs) -> Result<(), String> {
    if let Some(b) = args.batches.iter().find(|&&b| b == 0 || b > MAX_BATCH) {
        return Err(format!("--batches {b}: give batch sizes from 1 to {MAX_BATCH}"));
    }
    if let Some(s) = args.seqs.iter().find(|&&s| s == 0 || s > MAX_SEQ) {
        return Err(format!("--seqs {s}: give lengths from 1 to {MAX_SEQ}"));
    }
    if args.matmul_tokens > MAX_MATMUL_TOKENS {
        return Err(format!("--matmul-tokens {}: at most {MAX_MATMUL_TOKENS}", args.matmul_tokens));
    }
    if !(args.min_seconds.is_finite() && (0.0..=3600.0).contains(&args.min_seconds)) {
        return Err(format!("--min-seconds {}: give seconds from 0 to 3600", args.min_seconds));
    }
    Ok(())
}

const MAX_BATCH: usize = 1024;
const MAX_SEQ: usize = 512;
const MAX_MATMUL_TOKENS: usize = 1 << 16;

pub fn run(args: BenchArgs) -> Result<(), String> {
    check(&args)?;
    let mut weights = Vec::new();
    for m in &args.models {
        match m.as_str() {
            "minilm" => {
                let model = Model::from_dir(&args.model_dir).map_err(|e| e.to_string())?;
                weights.push(("minilm", "all-MiniLM-L6-v2", model.weights));
            }
            "bert-base" => weights.push(("bert-base", "bert-base (random)", BertWeights::random(&BertConfig::bert_base(), 1))),
            other => return Err(format!("unknown model geometry {other:?} (minilm, bert-base)")),
        }
    }
    let command: Vec<String> = std::env::args().collect();
    println!("`{}` · {} · {}", command.join(" "), machine(), today());
    println!();
    let compare = args.compare_pytorch.is_some();
    if compare {
        println!("| model | backend | batch × seq | ms / batch | sequences / s | PyTorch ms | PyTorch ÷ ours |");
        println!("|---|---|---|---|---|---|---|");
    } else {
        println!("| model | backend | batch × seq | ms / batch | sequences / s |");
        println!("|---|---|---|---|---|");
    }
    // the per-kernel tables, printed after the main one
    let mut profiles = Vec::new();
    for backend in &args.backends {
        let (choice, device) = match backend.as_str() {
            "gpu" => (BackendChoice::Gpu, "cuda"),
            "cpu" => (BackendChoice::Cpu, "cpu"),
            other => return Err(format!("unknown backend {other:?} (gpu, cpu)")),
        };
        let reference = match &args.compare_pytorch {
            Some(python) => match pytorch(python, device, &args, FastCpuEncoder::threads()) {
                Ok(t) => t,
                Err(e) => {
                    println!("| (PyTorch {device}: {e}) | | | | | | |");
                    HashMap::new()
                }
            },
            None => HashMap::new(),
        };
        // the CPU path has no shaders: one setting
        let checks = if choice == BackendChoice::Gpu { &args.shader_checks[..] } else { &[ShaderChecks::All] };
        for ((key, name, w), &checks) in weights.iter().flat_map(|m| checks.iter().map(move |c| (m, c))) {
            let mut engine = pollster::block_on(engine_with_checks(name, w, choice, checks))?;
            let label = match checks {
                ShaderChecks::All => engine.backend().to_string(),
                other => format!("{} · shader checks: {}", engine.backend(), other.name()),
            };
            for &s in &args.seqs {
                for &b in &args.batches {
                    let rows = (0..b).map(|r| ((0..s).map(|t| (1000 + 7 * t + r) as u32).collect(), vec![0; s])).collect();
                    let batch = Batch::from_rows(rows, 0).map_err(|e| e.to_string())?;
                    let ms = time_ms(args.min_seconds, || {
                        pollster::block_on(engine.forward(&batch, AttentionRequest::None)).map(|_| ()).map_err(|e| e.to_string())
                    })?;
                    let row = format!("| {name} | {label} | {b} × {s} | {ms:.2} | {:.1} |", b as f64 * 1e3 / ms);
                    match (compare, reference.get(&(key.to_string(), b, s))) {
                        (false, _) => println!("{row}"),
                        (true, Some(t)) => println!("{row} {t:.2} | {:.2} |", t / ms),
                        (true, None) => println!("{row} – | – |"),
                    }
                    if args.profile && choice == BackendChoice::Gpu {
                        let kernels = pollster::block_on(engine.profile(&batch)).map_err(|e| e.to_string())?;
                        profiles.push(profile_table(&format!("{name} {b} × {s} on {label}"), ms, kernels));
                    }
                }
            }
        }
    }
    for table in profiles {
        println!("\n{table}");
    }
    if args.matmul_tokens > 0 {
        matmul_table(&args)?;
    }
    Ok(())
}

/// An engine whose GPU shaders carry only `checks` of wgpu's runtime checks.
async fn engine_with_checks(name: &str, w: &BertWeights, choice: BackendChoice, checks: ShaderChecks) -> Result<Engine, String> {
    let gpu = match choice {
        BackendChoice::Cpu => Err(bertlab::Error::Gpu("not asked for".into())),
        _ => GpuContext::new().await.map(|mut ctx| {
            // SAFETY: a benchmark of our kernels, whose indexing tests/kernels.rs holds in bounds on odd shapes
            unsafe { ctx.set_shader_checks(checks) };
            ctx
        }),
    };
    Engine::with_context(name, w.clone(), None, gpu, choice).await.map_err(|e| e.to_string())
}

/// One forward's kernels, the slowest first: dispatches, device time, share.
fn profile_table(what: &str, forward_ms: f64, kernels: Option<Vec<(std::sync::Arc<str>, f64)>>) -> String {
    let Some(kernels) = kernels else { return format!("(profile of {what}: this adapter has no timestamp queries)") };
    let mut by_kernel: Vec<(std::sync::Arc<str>, usize, f64)> = Vec::new();
    for (label, ms) in kernels {
        match by_kernel.iter_mut().find(|k| k.0 == label) {
            Some(k) => {
                k.1 += 1;
                k.2 += ms;
            }
            None => by_kernel.push((label, 1, ms)),
        }
    }
    by_kernel.sort_by(|a, b| b.2.total_cmp(&a.2));
    let total: f64 = by_kernel.iter().map(|k| k.2).sum();
    let mut t = format!(
        "Profile of {what}: the kernels' device time {total:.3} ms, one pass each (the forward above: {forward_ms:.2} ms)\n\n| kernel | dispatches | ms | share |\n|---|---|---|---|\n"
    );
    for (label, n, ms) in by_kernel {
        t.push_str(&format!("| {label} | {n} | {ms:.3} | {:.1}% |\n", 100.0 * ms / total.max(f64::MIN_POSITIVE)));
    }
    t
}

/// GFLOP/s of the matmul kernel (GPU) and of the fast CPU backend on bert-base's Linear shapes.
fn matmul_table(args: &BenchArgs) -> Result<(), String> {
    let m = args.matmul_tokens;
    let shapes = [("QKV", 2304, 768), ("attention out", 768, 768), ("FFN in", 3072, 768), ("FFN out", 768, 3072)];
    println!();
    println!("| matmul (bert-base, {m} tokens) | m × n × k | backend | ms | GFLOP/s |");
    println!("|---|---|---|---|---|");
    // a context per shader-checks setting
    let mut contexts = Vec::new();
    if args.backends.iter().any(|b| b == "gpu") {
        for &checks in &args.shader_checks {
            let mut ctx = pollster::block_on(GpuContext::new()).map_err(|e| e.to_string())?;
            // SAFETY: a benchmark of our kernel, whose indexing tests/kernels.rs holds in bounds on odd shapes
            unsafe { ctx.set_shader_checks(checks) };
            contexts.push((ctx, checks));
        }
    }
    for (name, n, k) in shapes {
        let flops = 2.0 * m as f64 * n as f64 * k as f64;
        let x: Vec<f32> = (0..m * k).map(|i| ((i % 97) as f32 - 48.0) * 1e-2).collect();
        let lin =
            Linear { weight: (0..n * k).map(|i| ((i % 89) as f32 - 44.0) * 1e-3).collect(), bias: vec![0.1f32; n], in_dim: k, out_dim: n };
        for (ctx, checks) in &contexts {
            // the kernel the encoder runs, on x padded the way the encoder pads it
            let kernel = LinearKernel::new(ctx);
            let rows = padded_rows(m);
            let mut padded = x.clone();
            padded.resize(rows * k, 0.0);
            let (xb, wb, bb) = (ctx.storage_f32("x", &padded), ctx.storage_f32("w", &lin.weight), ctx.storage_f32("b", &lin.bias));
            let y = ctx.scratch("y", rows * n);
            let reps = 10;
            let d: Vec<_> =
                (0..reps).map(|_| kernel.bind(ctx, (&xb, XRows::Dense { held: rows }), &wb, &bb, &y, (m, n, k), Epilogue::None)).collect();
            let ms =
                time_ms(args.min_seconds, || pollster::block_on(ctx.run(&d, &[])).map(|_| ()).map_err(|e| e.to_string()))? / reps as f64;
            let path = LinearPath::choose(m, k, rows);
            let checks = if *checks == ShaderChecks::All { String::new() } else { format!(", shader checks: {}", checks.name()) };
            println!("| {name} | {m} × {n} × {k} | {}, {path:?}{checks} | {ms:.3} | {:.1} |", ctx.info.name, flops / ms / 1e6);
        }
        if args.backends.iter().any(|b| b == "cpu") {
            let packed = PackedLinear::new(&lin, Epilogue::None);
            let ms = time_ms(args.min_seconds, || {
                packed.forward(&x, m);
                Ok(())
            })?;
            println!("| {name} | {m} × {n} × {k} | CPU ({} threads) | {ms:.3} | {:.1} |", FastCpuEncoder::threads(), flops / ms / 1e6);
        }
    }
    Ok(())
}

//! The wgpu device, and the few helpers every kernel launcher shares:
//! creating buffers, binding a pipeline to them, recording dispatches into
//! one submission, and reading results back (asynchronously: the browser
//! can only map buffers that way; natively we poll until done).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};

/// Cloning shares the device (wgpu's handles are reference-counted): the
/// fine-tuning head runs on the encoder's device.
#[derive(Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    lost: Arc<AtomicBool>,
    /// The first validation/out-of-memory error wgpu reported outside an error scope.
    uncaptured: Arc<Mutex<Option<String>>>,
    /// Whether the device writes timestamps (for [`Self::profile`]).
    timestamps: bool,
    /// Each pipeline's label, so a profile can name what each dispatch ran.
    labels: Arc<Mutex<HashMap<wgpu::ComputePipeline, Arc<str>>>>,
    /// The checks wgpu writes into shaders made from now on.
    checks: ShaderChecks,
}

/// Which of wgpu's runtime checks go into our shaders. Every one is on
/// unless a benchmark asks (`bertlab bench --shader-checks`) to measure what
/// one costs: natively only, as the browser applies its own regardless.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShaderChecks {
    All,
    /// No injected bounds checks on buffer and array indexing.
    NoBounds,
    /// No loop counters (`force_loop_bounding`), which keep drivers from unrolling.
    NoLoopBounding,
    None,
}

impl ShaderChecks {
    pub const ALL: [ShaderChecks; 4] = [ShaderChecks::All, ShaderChecks::NoBounds, ShaderChecks::NoLoopBounding, ShaderChecks::None];

    pub fn name(self) -> &'static str {
        match self {
            ShaderChecks::All => "all",
            ShaderChecks::NoBounds => "no-bounds",
            ShaderChecks::NoLoopBounding => "no-loop-bounding",
            ShaderChecks::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<ShaderChecks> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl GpuContext {
    /// Opens the best adapter there is (a hardware GPU over a software one)
    /// and asks for the largest buffers it allows.
    pub async fn new() -> Result<Self> {
        #[cfg(target_arch = "wasm32")]
        if !browser_has_webgpu() {
            return Err(Error::Gpu("WebGPU not available in this browser".into()));
        }
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("no GPU adapter: {e}")))?;
        #[allow(unused_mut)]
        let mut info = adapter.get_info();
        #[cfg(target_arch = "wasm32")]
        if info.name.is_empty() {
            info.name = browser_adapter_name().await.unwrap_or_default();
        }
        let have = adapter.limits();
        // WebGPU's default limits cover our kernels; the buffer sizes are what
        // bound the model and the batch, so ask for all the adapter offers.
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: have.max_storage_buffer_binding_size,
            max_buffer_size: have.max_buffer_size,
            ..wgpu::Limits::default()
        };
        // timestamps only serve `bertlab bench --profile`; asked for where the adapter has them
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("bertlab"),
                required_features: if timestamps { wgpu::Features::TIMESTAMP_QUERY } else { wgpu::Features::empty() },
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("cannot open {}: {e}", info.name)))?;
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        device.set_device_lost_callback(move |_, _| flag.store(true, Ordering::SeqCst));
        let uncaptured = Arc::new(Mutex::new(None));
        let sink = uncaptured.clone();
        // wgpu's default handler panics; keep the message and report it as an Error instead.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap();
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        Ok(GpuContext { device, queue, info, limits, lost, uncaptured, timestamps, labels: Default::default(), checks: ShaderChecks::All })
    }

    /// Lowers the storage-binding limit the encoder plans with (never raises
    /// it): how tests make a batch split into several submissions, or a model
    /// not fit, without a huge batch.
    pub fn limit_bindings(&mut self, bytes: u64) {
        self.limits.max_storage_buffer_binding_size = self.limits.max_storage_buffer_binding_size.min(bytes);
    }

    /// A software rasteriser posing as a GPU (Mesa's lavapipe, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The adapter's name (browsers may hide it; then what they do tell),
    /// whether it is a software one, and the API: "llvmpipe (software, Vulkan)".
    pub fn describe(&self) -> String {
        let i = &self.info;
        let name = [&i.name, &i.driver_info, &i.driver]
            .into_iter()
            .find(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("unnamed adapter (vendor {:#x})", i.vendor));
        let api = match i.backend {
            wgpu::Backend::BrowserWebGpu => "WebGPU".to_string(),
            other => format!("{other:?}"),
        };
        if self.is_software() {
            format!("{name} (software, {api})")
        } else {
            format!("{name} ({api})")
        }
    }

    /// Fails if the device was lost or wgpu reported an error since the last check.
    pub fn check(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::DeviceLost(format!("the GPU device ({}) was lost", self.info.name)));
        }
        if let Some(msg) = self.uncaptured.lock().unwrap().take() {
            return Err(Error::Gpu(msg.lines().next().unwrap_or("wgpu error").to_string()));
        }
        Ok(())
    }

    /// An error after a submission: the lost device when that is the cause
    /// (its callback may only run once the failed work is polled).
    fn failure(&self, msg: String) -> Error {
        match self.check() {
            Err(e @ Error::DeviceLost(_)) => e,
            _ => Error::Gpu(msg),
        }
    }

    pub fn storage_f32(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        self.init_buffer(label, bytemuck::cast_slice(data))
    }

    pub fn storage_u32(&self, label: &str, data: &[u32]) -> wgpu::Buffer {
        self.init_buffer(label, bytemuck::cast_slice(data))
    }

    fn init_buffer(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        // wgpu rejects zero-sized bindings; a 4-byte buffer stands in for empty data.
        let bytes = if bytes.is_empty() { &[0u8; 4][..] } else { bytes };
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// An uninitialised storage buffer of `len` 32-bit values.
    pub fn scratch(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    pub fn uniform<T: bytemuck::Pod>(&self, value: &T) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// Rewrites a recorded dispatch's parameters (what changes between
    /// replays of the same work, e.g. AdamW's step and learning rate).
    pub fn update_params<T: bytemuck::Pod>(&self, d: &Dispatch, params: &T) {
        self.queue.write_buffer(&d.params, 0, bytemuck::bytes_of(params));
    }

    /// Makes shaders from now on with only `checks` of wgpu's runtime checks
    /// (for benchmarks; the engine keeps them all).
    ///
    /// # Safety
    /// Without bounds checks an index past a buffer is undefined behaviour on
    /// the GPU: only for kernels whose indexing is tested in bounds (ours are,
    /// on odd shapes, with the checks on).
    #[cfg(not(target_arch = "wasm32"))]
    pub unsafe fn set_shader_checks(&mut self, checks: ShaderChecks) {
        self.checks = checks;
    }

    pub fn pipeline(&self, label: &str, wgsl: &str) -> wgpu::ComputePipeline {
        let desc = wgpu::ShaderModuleDescriptor { label: Some(label), source: wgpu::ShaderSource::Wgsl(wgsl.into()) };
        let module = match self.checks {
            ShaderChecks::All => self.device.create_shader_module(desc),
            other => {
                let checks = wgpu::ShaderRuntimeChecks {
                    bounds_checks: matches!(other, ShaderChecks::NoLoopBounding),
                    force_loop_bounding: matches!(other, ShaderChecks::NoBounds),
                    ..wgpu::ShaderRuntimeChecks::checked()
                };
                // SAFETY: `set_shader_checks`'s caller vouched for the kernels' indexing and loops
                unsafe { self.device.create_shader_module_trusted(desc, checks) }
            }
        };
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        self.labels.lock().unwrap().insert(pipeline.clone(), label.into());
        pipeline
    }

    /// Binds `params` and `buffers` (bindings 0, 1, 2, ...) to `pipeline`.
    pub fn dispatch<T: bytemuck::Pod>(
        &self,
        pipeline: &wgpu::ComputePipeline,
        params: &T,
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) -> Dispatch {
        let params = self.uniform(params);
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let label = self.labels.lock().unwrap().get(pipeline).cloned().unwrap_or_else(|| "unlabelled".into());
        Dispatch { pipeline: pipeline.clone(), bind_group, params, workgroups, label }
    }

    /// Zeroes `buffers` (a step's gradients), in one submission.
    pub fn clear(&self, buffers: &[&wgpu::Buffer]) -> Result<()> {
        self.check()?;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        for b in buffers {
            encoder.clear_buffer(b, 0, None);
        }
        self.queue.submit([encoder.finish()]);
        Ok(())
    }

    /// Records `dispatches` in order into one compute pass and submits it,
    /// without waiting (a failure shows at the next [`Self::check`] or run).
    pub fn submit(&self, dispatches: &[Dispatch]) -> Result<()> {
        self.check()?;
        self.queue.submit([self.record(dispatches).finish()]);
        Ok(())
    }

    fn record(&self, dispatches: &[Dispatch]) -> wgpu::CommandEncoder {
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for d in dispatches {
                pass.set_pipeline(&d.pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
            }
        }
        encoder
    }

    /// Records `dispatches` in order into one compute pass, then copies
    /// `outputs` to a mappable buffer, submits once and reads them back.
    pub async fn run(&self, dispatches: &[Dispatch], outputs: &[(&wgpu::Buffer, usize)]) -> Result<Vec<Vec<f32>>> {
        self.check()?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let total: usize = outputs.iter().map(|(_, n)| n).sum();
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (total.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.record(dispatches);
        let mut offset = 0u64;
        for (buf, n) in outputs {
            let bytes = (*n * 4) as u64;
            if bytes > 0 {
                encoder.copy_buffer_to_buffer(buf, 0, &staging, offset, bytes);
            }
            offset += bytes;
        }
        self.queue.submit([encoder.finish()]);
        if let Some(e) = scope.pop().await {
            return Err(self.failure(e.to_string().lines().next().unwrap_or("validation error").to_string()));
        }

        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| self.failure(format!("waiting for the GPU failed: {e}")))?;
        let mapped = rx.await.map_err(|_| self.failure("the GPU dropped the readback".into()))?;
        mapped.map_err(|e| self.failure(format!("cannot read results back: {e}")))?;
        self.check()?;
        let view = staging.slice(..).get_mapped_range().map_err(|e| Error::Gpu(e.to_string()))?;
        let all: &[f32] = bytemuck::cast_slice(&view);
        let mut result = Vec::with_capacity(outputs.len());
        let mut at = 0;
        for (_, n) in outputs {
            result.push(all[at..at + n].to_vec());
            at += n;
        }
        drop(view);
        staging.unmap();
        Ok(result)
    }

    /// Runs `dispatches` once, each in a compute pass of its own with
    /// timestamps at its start and end, and says what each took: (pipeline
    /// label, ms) in order. `None` where the device has no timestamp queries.
    /// A pass per dispatch adds what a pass boundary costs, so the sum runs a
    /// little over one forward in one pass.
    pub async fn profile(&self, dispatches: &[Dispatch]) -> Result<Option<Vec<(Arc<str>, f64)>>> {
        if !self.timestamps {
            return Ok(None);
        }
        let mut times = Vec::with_capacity(dispatches.len());
        // a query set holds at most 4096 timestamps: two per dispatch
        for chunk in dispatches.chunks(2048) {
            let count = 2 * chunk.len() as u32;
            let set =
                self.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("profile"), ty: wgpu::QueryType::Timestamp, count });
            let resolved = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile-resolved"),
                size: count as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let mut encoder = self.device.create_command_encoder(&Default::default());
            for (i, d) in chunk.iter().enumerate() {
                let writes = wgpu::ComputePassTimestampWrites {
                    query_set: &set,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                };
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: Some(writes) });
                pass.set_pipeline(&d.pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
            }
            encoder.resolve_query_set(&set, 0..count, &resolved, 0);
            self.queue.submit([encoder.finish()]);
            // the u64 ticks come back through `run`'s path as pairs of 32-bit words
            let words = self.run(&[], &[(&resolved, 2 * count as usize)]).await?.remove(0);
            let ticks: Vec<u64> = words.chunks(2).map(|w| w[0].to_bits() as u64 | (w[1].to_bits() as u64) << 32).collect();
            let ms_per_tick = self.queue.get_timestamp_period() as f64 / 1e6;
            for (d, pair) in chunk.iter().zip(ticks.chunks(2)) {
                times.push((d.label.clone(), pair[1].saturating_sub(pair[0]) as f64 * ms_per_tick));
            }
        }
        Ok(Some(times))
    }
}

/// Whether `navigator.gpu` exists (in a window or a worker).
#[cfg(target_arch = "wasm32")]
fn browser_has_webgpu() -> bool {
    let navigator = js_sys::Reflect::get(&js_sys::global(), &"navigator".into()).unwrap_or_default();
    !navigator.is_undefined() && js_sys::Reflect::get(&navigator, &"gpu".into()).map(|g| !g.is_undefined() && !g.is_null()).unwrap_or(false)
}

/// wgpu maps only the adapter's `description`, which Chromium leaves empty;
/// its `vendor` and `architecture` (e.g. "google swiftshader") say more.
#[cfg(target_arch = "wasm32")]
async fn browser_adapter_name() -> Option<String> {
    use js_sys::Reflect;
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let gpu = Reflect::get(&navigator, &"gpu".into()).ok()?;
    let request: js_sys::Function = Reflect::get(&gpu, &"requestAdapter".into()).ok()?.into();
    let promise: js_sys::Promise = request.call0(&gpu).ok()?.into();
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    let info = Reflect::get(&adapter, &"info".into()).ok()?;
    let field = |k: &str| Reflect::get(&info, &k.into()).ok().and_then(|v| v.as_string()).unwrap_or_default();
    let name =
        [field("vendor"), field("architecture"), field("device")].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    (!name.is_empty()).then_some(name)
}

/// A pipeline bound to its buffers, ready to record. Built once per batch
/// shape and replayed for every forward of that shape.
pub struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    params: wgpu::Buffer,
    workgroups: [u32; 3],
    /// The pipeline's label: what a profile calls this dispatch.
    label: Arc<str>,
}

impl Dispatch {
    /// The kernel it runs (its pipeline's label).
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// A 1-D grid of `n` workgroups folded into x and y (x ≤ 65535); the shader
/// recovers the index as `wg.x + wg.y * num_workgroups.x`.
pub fn grid(n: usize) -> [u32; 3] {
    let x = n.clamp(1, 65535);
    [x as u32, n.div_ceil(x) as u32, 1]
}

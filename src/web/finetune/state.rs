//! The Fine-tune page's state: the data, the settings, and what the run
//! reports ([`RunEvent`]s applied to signals). The page never trains itself:
//! it asks the engine worker to, and shows what comes back.

use bertlab::classifier::TrainLayers;
use bertlab::finetune::{Metrics, TrainConfig, HEAD_LEARNING_RATE};
use bertlab::head::HeadInput;
use bertlab::protocol::{Estimate, PauseReason, Reply, Request, RunEvent, RunRecord, RunRequest, SplitName};
use bertlab::task::{Builtin, Columns, TaskData};
use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client;

#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Idle,
    Encoding { split: SplitName, done: usize, total: usize, per_s: f64 },
    Training,
    Paused(PauseReason),
    Stopped(Option<String>),
    Done,
    Failed(String),
}

impl Status {
    pub fn busy(&self) -> bool {
        matches!(self, Status::Encoding { .. } | Status::Training)
    }
}

/// Whether the last checkpoint reached the browser's storage.
#[derive(Clone, Debug, PartialEq)]
pub enum SaveState {
    Saved { step: u32, total: usize },
    NotSaved(String),
}

/// The task's data and where it came from ("GLUE SST-2 (bundled)", file names).
#[derive(Clone, Debug, PartialEq)]
pub struct Data {
    pub source: String,
    pub task: TaskData,
}

/// Which data the page trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Builtin(Builtin),
    /// The user's training and validation files.
    Files,
}

/// A file the user picked: its name and text.
#[derive(Clone, Debug, PartialEq)]
pub struct Picked {
    pub name: String,
    pub text: String,
}

/// The page's state, shared by its components.
/// Milliseconds per pair forward: on the engine's thread alone (what a run
/// of BERT's layers trains on) and on every thread (what encodes a head's
/// features), with the backend's words.
#[derive(Clone, Debug, PartialEq)]
pub struct Speed {
    pub one_thread_ms: f64,
    pub all_threads_ms: f64,
    pub backend: String,
}

#[derive(Clone, Copy)]
pub struct Ft {
    pub choice: RwSignal<Choice>,
    /// The user's files (training, validation) and the columns chosen for a table.
    pub files: RwSignal<(Option<Picked>, Option<Picked>)>,
    pub columns: RwSignal<Columns>,
    pub data: RwSignal<Option<Data>>,
    pub data_error: RwSignal<Option<String>>,
    /// Rows fetched so far from the hub's datasets server.
    pub hub_progress: RwSignal<String>,
    pub config: RwSignal<TrainConfig>,
    pub train_limit: RwSignal<usize>,
    pub status: RwSignal<Status>,
    pub losses: RwSignal<Vec<f32>>,
    pub epochs: RwSignal<Vec<Metrics>>,
    pub device: RwSignal<String>,
    /// The run shown (running, paused or ended).
    pub run: RwSignal<Option<RunRecord>>,
    pub save_state: RwSignal<Option<SaveState>>,
    /// A command that was refused (a second Start while one runs, a resume on the wrong model).
    pub message: RwSignal<Option<String>>,
    pub saved_runs: RwSignal<Vec<RunRecord>>,
    pub storage: RwSignal<Option<Estimate>>,
    /// A paused run waits in the worker's memory: Resume continues it at once.
    pub paused_in_memory: RwSignal<bool>,
    /// Fields whose text is not a valid setting, by field, with why; Start waits for none.
    pub invalid: RwSignal<BTreeMap<&'static str, String>>,
    /// The engine's speed, measured when the model loads.
    pub speed: RwSignal<Option<Speed>>,
    /// Losses received since the chart was last redrawn: a head can take
    /// thousands of steps a second; the chart is redrawn every
    /// [`CHART_REFRESH`], whatever the rate (redrawing it costs time linear in
    /// the steps so far).
    pending_losses: StoredValue<Vec<f32>>,
    /// Steps per second since training (re)started, once a step is done.
    pub steps_per_s: RwSignal<Option<f64>>,
    /// When training (re)started: performance.now() and the steps done then.
    clock: StoredValue<Option<(f64, usize)>>,
}

/// How often the loss chart takes the steps that came in.
const CHART_REFRESH: std::time::Duration = std::time::Duration::from_millis(200);

/// Milliseconds of the page's monotonic clock.
fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

impl Ft {
    pub fn new() -> Self {
        Ft {
            choice: RwSignal::new(Choice::Builtin(Builtin::Mrpc)),
            files: RwSignal::new((None, None)),
            columns: RwSignal::new(Columns::default()),
            data: RwSignal::new(None),
            data_error: RwSignal::new(None),
            hub_progress: RwSignal::new(String::new()),
            // the Trainer's settings on the top two layers: what the CPU path trains in minutes, not hours
            config: RwSignal::new(TrainConfig { train_layers: TrainLayers::Top(2), ..TrainConfig::default() }),
            train_limit: RwSignal::new(0),
            status: RwSignal::new(Status::Idle),
            losses: RwSignal::new(Vec::new()),
            epochs: RwSignal::new(Vec::new()),
            device: RwSignal::new(String::new()),
            run: RwSignal::new(None),
            save_state: RwSignal::new(None),
            message: RwSignal::new(None),
            saved_runs: RwSignal::new(Vec::new()),
            storage: RwSignal::new(None),
            paused_in_memory: RwSignal::new(false),
            invalid: RwSignal::new(BTreeMap::new()),
            speed: RwSignal::new(None),
            pending_losses: StoredValue::new(Vec::new()),
            steps_per_s: RwSignal::new(None),
            clock: StoredValue::new(None),
        }
    }

    /// Makes this page the receiver of run events.
    pub fn listen(self) {
        client::on_run_events(move |e| self.apply(e));
        client::on_worker_lost(move |why| self.worker_lost(why));
    }

    pub fn busy(&self) -> bool {
        self.status.with(Status::busy)
    }

    /// Moves the losses received so far onto the chart, and updates the speed.
    fn flush_losses(self) {
        let new = self.pending_losses.try_update_value(std::mem::take).unwrap_or_default();
        if !new.is_empty() {
            self.losses.update(|l| l.extend(new));
            if let Some((start, steps)) = self.clock.get_value() {
                let done = self.losses.with_untracked(Vec::len) - steps;
                self.steps_per_s.set(Some(done as f64 / ((now_ms() - start) / 1e3).max(1e-3)));
            }
        }
    }

    /// Keeps steps' losses for the next redraw.
    fn queue_losses(self, losses: Vec<f32>) {
        let first = self.pending_losses.try_update_value(|p| {
            let was_empty = p.is_empty();
            p.extend(losses);
            was_empty
        });
        if first == Some(true) {
            set_timeout(move || self.flush_losses(), CHART_REFRESH);
        }
    }

    fn apply(self, event: RunEvent) {
        // every other event comes after the steps before it
        if !matches!(event, RunEvent::Steps { .. }) {
            self.flush_losses();
        }
        match event {
            RunEvent::Encoding { split, done, total, per_s } => self.status.set(Status::Encoding { split, done, total, per_s }),
            RunEvent::Training { record, device, losses, metrics } => {
                self.config.set(record.config.clone());
                self.run.set(Some(*record));
                self.device.set(device);
                self.clock.set_value(Some((now_ms(), losses.len())));
                self.steps_per_s.set(None);
                self.losses.set(losses);
                self.epochs.set(metrics);
                self.status.set(Status::Training);
            }
            RunEvent::Steps { losses } => self.queue_losses(losses),
            RunEvent::Epoch { metrics } => self.epochs.update(|e| e.push(metrics)),
            RunEvent::Saved { step, total } => {
                self.save_state.set(Some(SaveState::Saved { step, total }));
                self.refresh_runs();
            }
            RunEvent::NotSaved(e) => self.save_state.set(Some(SaveState::NotSaved(e))),
            RunEvent::Paused { why, in_memory } => {
                self.paused_in_memory.set(in_memory);
                self.end(Status::Paused(why))
            }
            RunEvent::Stopped(why) => self.end(Status::Stopped(why)),
            RunEvent::Done => self.end(Status::Done),
            RunEvent::Failed(e) => self.end(Status::Failed(e)),
        }
    }

    /// The engine worker stopped (a crash, the tab's memory): a run going there ends, said why.
    pub fn worker_lost(self, why: &str) {
        if self.status.get_untracked().busy() {
            self.end(Status::Failed(format!("the engine worker stopped ({why}): a saved run resumes from its last checkpoint")));
        }
    }

    fn end(self, status: Status) {
        if !matches!(status, Status::Paused(_)) {
            self.paused_in_memory.set(false);
        }
        self.status.set(status);
        self.refresh_runs();
    }

    /// Shows the saved runs and the storage estimate of a reply.
    fn show_runs(self, reply: Reply) {
        match reply {
            Reply::Runs { runs, storage } => {
                self.saved_runs.set(runs);
                self.storage.set(storage);
            }
            Reply::Failed { message, .. } => self.message.set(Some(message)),
            _ => {}
        }
    }

    /// Re-reads the saved runs and the storage estimate.
    pub fn refresh_runs(self) {
        spawn_local(async move { self.show_runs(client::call(Request::ListRuns).await) });
    }

    /// Sends a run command; a refusal says why, without touching the run that is going.
    fn command(self, request: Request, on_ok: impl FnOnce() + 'static) {
        spawn_local(async move {
            let r = client::ok(client::call(request).await);
            if r.is_ok() {
                on_ok();
            }
            self.message.set(r.err());
        });
    }

    pub fn start(self) {
        let Some(d) = self.data.get_untracked() else { return };
        let limit = match self.train_limit.get_untracked() {
            0 => usize::MAX,
            n => n,
        };
        let mut train = d.task.train.clone();
        train.truncate(limit);
        let req =
            RunRequest { config: self.config.get_untracked(), task: d.task.task.clone(), train, dev: d.task.eval.clone(), data: d.source };
        self.save_state.set(None);
        self.command(Request::StartRun(req), move || {
            self.losses.set(Vec::new());
            self.epochs.set(Vec::new());
            self.run.set(None);
        });
    }

    /// Chooses what trains. A learning rate left at one kind's default moves
    /// to the other's (a head needs about 1e-3, BERT's layers the Trainer's
    /// 2e-5); layers train BertForSequenceClassification's own head.
    pub fn set_train_layers(self, t: TrainLayers) {
        self.config.update(|c| {
            let default_lr = |c: &TrainConfig| if c.trains_layers() { TrainConfig::default().learning_rate } else { HEAD_LEARNING_RATE };
            let at_default = c.learning_rate == default_lr(c);
            c.train_layers = t;
            if at_default {
                c.learning_rate = default_lr(c);
            }
            if c.trains_layers() {
                c.head_input = HeadInput::Pooler;
                c.mlp_hidden = 0;
            }
        });
    }

    /// Times forwards of 8 pairs of 48 tokens (about an MRPC pair), or the
    /// model's `max_positions` if fewer, for the estimate shown before Start.
    pub fn measure_speed(self, max_positions: usize) {
        const PAIRS: usize = 8;
        let seq = 48.min(max_positions);
        // the last model's speed says nothing about this one
        self.speed.set(None);
        spawn_local(async move {
            let time = |one_thread| client::call(Request::Bench { batch: PAIRS, seq, min_ms: 200.0, one_thread });
            if let (Reply::Benched { ms: one, .. }, Reply::Benched { ms: all, backend }) = (time(true).await, time(false).await) {
                self.speed.set(Some(Speed { one_thread_ms: one / PAIRS as f64, all_threads_ms: all / PAIRS as f64, backend }));
            }
        });
    }

    pub fn pause(self) {
        self.command(Request::Pause, || {});
    }

    pub fn resume(self) {
        self.command(Request::Resume, || {});
    }

    pub fn stop(self) {
        self.command(Request::Stop, || {});
    }

    pub fn resume_saved(self, id: String) {
        self.save_state.set(None);
        self.command(Request::ResumeSaved { id }, || {});
    }

    pub fn delete_saved(self, id: String) {
        spawn_local(async move { self.show_runs(client::call(Request::DeleteRun { id }).await) });
    }
}

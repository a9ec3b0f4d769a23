//! The Fine-tune page's state: the data, the settings, and what the run
//! reports ([`RunEvent`]s applied to signals). The page never trains itself:
//! it asks `runs` to, and shows what comes back.

use std::rc::Rc;

use bertlab::finetune::{Metrics, TrainConfig};
use bertlab::glue::Dataset;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::run_store::{self, RunRecord};
use crate::runs::{self, PauseReason, RunEvent, RunRequest, SplitName};
use crate::storage::{self, Estimate};

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

#[derive(Clone, Debug, PartialEq)]
pub struct Data {
    pub source: String,
    pub train: Dataset,
    pub dev: Dataset,
}

/// The page's state, shared by its components.
#[derive(Clone, Copy)]
pub struct Ft {
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
}

impl Ft {
    pub fn new() -> Self {
        Ft {
            data: RwSignal::new(None),
            data_error: RwSignal::new(None),
            hub_progress: RwSignal::new(String::new()),
            config: RwSignal::new(TrainConfig::default()),
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
        }
    }

    pub fn busy(&self) -> bool {
        self.status.with(Status::busy)
    }

    /// Where the run's reports go.
    fn sink(self) -> runs::Sink {
        Rc::new(move |e| self.apply(e))
    }

    fn apply(self, event: RunEvent) {
        match event {
            RunEvent::Encoding { split, done, total, per_s } => self.status.set(Status::Encoding { split, done, total, per_s }),
            RunEvent::Training { record, device, losses, metrics } => {
                self.config.set(record.config.clone());
                self.run.set(Some(record));
                self.device.set(device);
                self.losses.set(losses);
                self.epochs.set(metrics);
                self.status.set(Status::Training);
            }
            RunEvent::Step { loss } => self.losses.update(|l| l.push(loss)),
            RunEvent::Epoch { metrics } => self.epochs.update(|e| e.push(metrics)),
            RunEvent::Saved { step, total } => {
                self.save_state.set(Some(SaveState::Saved { step, total }));
                self.refresh_runs();
            }
            RunEvent::NotSaved(e) => self.save_state.set(Some(SaveState::NotSaved(e))),
            RunEvent::Paused(why) => self.end(Status::Paused(why)),
            RunEvent::Stopped(why) => self.end(Status::Stopped(why)),
            RunEvent::Done => self.end(Status::Done),
            RunEvent::Failed(e) => self.end(Status::Failed(e)),
        }
    }

    fn end(self, status: Status) {
        self.status.set(status);
        self.refresh_runs();
    }

    /// Re-reads the saved runs and the storage estimate.
    pub fn refresh_runs(self) {
        spawn_local(async move {
            match run_store::list().await {
                Ok(list) => self.saved_runs.set(list),
                Err(e) => self.message.set(Some(e)),
            }
            self.storage.set(storage::estimate().await);
        });
    }

    /// Refused commands say why, without touching the run that is going.
    fn refused(self, r: Result<(), String>) {
        self.message.set(r.err());
    }

    pub fn start(self) {
        let Some(d) = self.data.get_untracked() else { return };
        let limit = match self.train_limit.get_untracked() {
            0 => usize::MAX,
            n => n,
        };
        let req = RunRequest {
            config: self.config.get_untracked(),
            train: d.train.examples.iter().take(limit).cloned().collect(),
            dev: d.dev.examples.clone(),
            data: d.source,
        };
        self.save_state.set(None);
        let started = runs::start(req, self.sink());
        if started.is_ok() {
            self.losses.set(Vec::new());
            self.epochs.set(Vec::new());
            self.run.set(None);
        }
        self.refused(started);
    }

    pub fn pause(self) {
        runs::pause();
    }

    pub fn resume(self) {
        self.refused(runs::resume(self.sink()));
    }

    pub fn stop(self) {
        runs::stop(self.sink());
    }

    pub fn resume_saved(self, id: String) {
        self.save_state.set(None);
        self.refused(runs::resume_saved(id, self.sink()));
    }

    pub fn delete_saved(self, id: String) {
        spawn_local(async move {
            if let Err(e) = run_store::delete(&id).await {
                self.message.set(Some(e));
            }
            self.refresh_runs();
        });
    }
}

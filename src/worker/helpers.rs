//! More threads for the CPU path in a tab: helper workers. Each helper is
//! another engine worker holding the same model on the CPU path, and a CPU
//! forward splits its rows between the engine and the helpers that hold its
//! model (`Engine::forward`). Chosen over wasm threads (shared memory): it
//! needs no nightly `build-std` and no cross-origin isolation, so it works on
//! any host, at the cost of a copy of the weights per helper, which bounds
//! how many there are.
//!
//! This module is both sides: the engine's pool of helpers, and what a
//! helper does with the parts it is sent.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use bertlab::browser::engine_worker::EngineWorker;
use bertlab::browser::global;
use bertlab::engine::{ForwardHelpers, PartForward};
use bertlab::protocol::{Reply, Request};
use bertlab::{AttentionRequest, BackendChoice, Batch, Engine, Error, Model, ModelFiles, ModelIdentity};
use futures_util::future::join_all;
use futures_util::lock::Mutex;
use js_sys::Reflect;

use crate::engine_service::{model_info, SharedEngine};

/// At most this many helpers, whatever the cores.
const MOST_HELPERS: usize = 3;
/// Memory all helpers together may take: each holds its model about three
/// times over (the message's bytes, the weights, the packed weights).
const HELPERS_MEMORY: usize = 1_500_000_000;

struct Helper {
    worker: EngineWorker,
    /// The model it holds, once it has loaded one.
    holds: RefCell<Option<ModelIdentity>>,
}

/// The engine's helpers, each holding the model the engine was loaded with.
pub struct Helpers {
    helpers: Vec<Helper>,
}

impl Helpers {
    /// The helpers alive that hold `model`.
    fn holding<'a>(&'a self, model: &'a ModelIdentity) -> impl Iterator<Item = &'a Helper> + 'a {
        self.helpers.iter().filter(move |h| !h.worker.is_lost() && h.holds.borrow().as_ref().is_some_and(|m| m.same_model(model)))
    }
}

impl ForwardHelpers for Helpers {
    fn ready(&self, model: &ModelIdentity) -> usize {
        self.holding(model).count()
    }

    fn start(&self, i: usize, model: &ModelIdentity, batch: Batch, attentions: AttentionRequest) -> PartForward {
        let Some(helper) = self.holding(model).nth(i) else {
            return Box::pin(async { Err(Error::Input("no such helper".into())) });
        };
        let reply = helper.worker.call(Request::ForwardPart { model: model.clone(), batch, attentions });
        Box::pin(async move {
            match reply.await {
                Reply::ForwardedPart(out) => Ok(out),
                Reply::Failed { message, .. } => Err(Error::Input(message)),
                other => Err(Error::Input(format!("a helper answered {other:?}"))),
            }
        })
    }
}

/// How many helpers to start for a model of `weight_bytes`: one per core
/// beyond this worker's, as many as memory allows, at most [`MOST_HELPERS`].
fn how_many(weight_bytes: usize) -> usize {
    let cores =
        global("navigator").and_then(|n| Reflect::get(&n, &"hardwareConcurrency".into()).ok()).and_then(|c| c.as_f64()).unwrap_or(1.0);
    let by_memory = HELPERS_MEMORY / (3 * weight_bytes).max(1);
    (cores as usize).saturating_sub(1).min(by_memory).min(MOST_HELPERS)
}

/// Starts helpers and sends each `files` now; the future yields the helpers
/// once each has loaded the model or failed to (those that failed stay out
/// of every forward). None where this tab has one core, or no room.
pub fn start(files: &ModelFiles) -> impl Future<Output = Option<Rc<Helpers>>> {
    let helpers: Vec<Helper> = (0..how_many(files.model_safetensors.as_ref().map_or(0, Vec::len)))
        .map_while(|_| EngineWorker::start(|_| {}, |_| {}).ok())
        .map(|worker| Helper { worker, holds: RefCell::new(None) })
        .collect();
    let loads: Vec<_> = helpers.iter().map(|h| h.worker.call(Request::LoadPart { files: files.clone() })).collect();
    async move {
        if helpers.is_empty() {
            return None;
        }
        for (helper, reply) in helpers.iter().zip(join_all(loads).await) {
            if let Reply::Loaded(info) = reply {
                *helper.holds.borrow_mut() = Some(info.identity);
            }
        }
        Some(Rc::new(Helpers { helpers }))
    }
}

thread_local! {
    /// In a helper: the model it holds.
    static PART_ENGINE: RefCell<Option<SharedEngine>> = const { RefCell::new(None) };
}

/// In a helper: holds `files`' model on the CPU path (no helpers of its own).
pub async fn load_part(files: ModelFiles) -> Reply {
    let loaded = async {
        let engine = Engine::new(Model::from_files(&files)?, BackendChoice::Cpu).await?;
        Ok::<_, Error>(engine)
    };
    match loaded.await {
        Ok(engine) => {
            let info = model_info(&engine);
            PART_ENGINE.with(|e| *e.borrow_mut() = Some(Rc::new(Mutex::new(engine))));
            Reply::Loaded(info)
        }
        Err(e) => Reply::failed(e.to_string()),
    }
}

/// In a helper: a forward of the rows it was sent, if it holds `model`.
pub async fn forward_part(model: ModelIdentity, batch: Batch, attentions: AttentionRequest) -> Reply {
    let Some(engine) = PART_ENGINE.with(|e| e.borrow().clone()) else { return Reply::failed("this helper holds no model") };
    let mut engine = engine.lock().await;
    if !engine.identity().same_model(&model) {
        return Reply::failed("this helper holds another model");
    }
    engine.forward(&batch, attentions).await.map_or_else(|e| Reply::failed(e.to_string()), Reply::ForwardedPart)
}

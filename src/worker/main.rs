//! The engine worker: the page's model, explorer runs and fine-tuning runs,
//! off the page's thread so the page never freezes while BERT works. It
//! answers [`Request`]s with [`Reply`]s and streams run events
//! (`bertlab::protocol`); built by trunk as a second wasm binary.

#[cfg(target_arch = "wasm32")]
mod engine_service;
#[cfg(target_arch = "wasm32")]
mod helpers;
#[cfg(target_arch = "wasm32")]
mod run_store;
#[cfg(target_arch = "wasm32")]
mod runs;

#[cfg(target_arch = "wasm32")]
mod worker {
    use std::rc::Rc;

    use bertlab::browser::storage;
    use bertlab::protocol::{decode, encode, FromWorker, Reply, Request, RunEvent, ToWorker};
    use js_sys::{Array, Uint8Array};
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;
    use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

    use crate::{engine_service, helpers, run_store, runs};

    fn scope() -> DedicatedWorkerGlobalScope {
        js_sys::global().unchecked_into()
    }

    /// Sends a message to the page, its buffer transferred (not copied).
    fn post(message: &FromWorker) {
        let bytes = match encode(message) {
            Ok(b) => b,
            Err(e) => return web_sys::console::error_1(&e.into()),
        };
        let array = Uint8Array::from(bytes.as_slice());
        if let Err(e) = scope().post_message_with_transfer(&array, &Array::of1(&array.buffer())) {
            web_sys::console::error_1(&e);
        }
    }

    fn run_events() -> runs::Sink {
        Rc::new(|e: RunEvent| post(&FromWorker::Run(e)))
    }

    async fn saved_runs() -> Reply {
        match run_store::list().await {
            Ok(runs) => Reply::Runs { runs, storage: storage::estimate().await },
            Err(e) => Reply::failed(e),
        }
    }

    async fn answer(request: Request) -> Reply {
        let done = |r: Result<(), String>| r.map_or_else(Reply::failed, |_| Reply::Ok);
        match request {
            Request::Load { files, backend } => {
                match engine_service::load(files, backend, |model, backend| post(&FromWorker::Backend { model, backend })).await {
                    Ok(info) => {
                        runs::model_changed();
                        Reply::Loaded(info)
                    }
                    Err(e) => Reply::Failed { message: e.to_string(), corrupt_model: e.is_corrupt_model() },
                }
            }
            Request::Explore { texts, selected, layer } => {
                engine_service::explore(texts, selected, layer).await.map_or_else(Reply::failed, Reply::Explored)
            }
            Request::WordInContext { texts, at, layer } => {
                engine_service::word_in_context(texts, at, layer).await.map_or_else(Reply::failed, Reply::WordInContext)
            }
            Request::FillMask { text, top_k } => engine_service::fill_mask(text, top_k).await.map_or_else(Reply::failed, Reply::MaskFilled),
            Request::Predict { text, pair, max_len } => {
                engine_service::predict(text, pair, max_len).await.map_or_else(Reply::failed, Reply::Predicted)
            }
            Request::ImportHead { bytes } => engine_service::import_head(&bytes).await.map_or_else(Reply::failed, Reply::HeadImported),
            Request::Export => engine_service::export().unwrap_or_else(Reply::failed),
            Request::StartRun(req) => done(runs::start(req, run_events())),
            Request::Pause => {
                runs::pause();
                Reply::Ok
            }
            Request::Resume => done(runs::resume(run_events())),
            Request::Stop => {
                runs::stop(run_events());
                Reply::Ok
            }
            Request::ResumeSaved { id } => done(runs::resume_saved(id, run_events())),
            Request::ListRuns => saved_runs().await,
            // a timing shares the device with nothing: not while a run trains (a run that
            // starts meanwhile waits for the engine the timing holds)
            Request::Bench { .. } if runs::busy() => Reply::failed("a run is in progress: time the engine when it ends"),
            Request::Bench { batch, seq, min_ms, one_thread } => engine_service::bench(batch, seq, min_ms, one_thread)
                .await
                .map_or_else(Reply::failed, |(ms, backend)| Reply::Benched { ms, backend }),
            Request::LoadPart { files } => helpers::load_part(files).await,
            Request::ForwardPart { model, batch, attentions } => helpers::forward_part(model, batch, attentions).await,
            Request::DeleteRun { id } => match run_store::delete(&id).await {
                Ok(()) => saved_runs().await,
                Err(e) => Reply::failed(e),
            },
        }
    }

    pub fn start() {
        console_error_panic_hook::set_once();
        let onmessage = Closure::<dyn Fn(MessageEvent)>::new(|ev: MessageEvent| {
            let bytes = Uint8Array::new(&ev.data()).to_vec();
            match decode::<ToWorker>(&bytes) {
                Ok(ToWorker { id, request }) => wasm_bindgen_futures::spawn_local(async move {
                    let reply = answer(request).await;
                    post(&FromWorker::Reply { id, reply });
                }),
                Err(e) => post(&FromWorker::Reply { id: 0, reply: Reply::failed(e) }),
            }
        });
        scope().set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        // the handler lives as long as the worker
        onmessage.forget();
        post(&FromWorker::Ready);
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {
    worker::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("bertlab-worker is the page's engine worker: build it with `trunk build` (see README.md)");
    std::process::exit(2);
}

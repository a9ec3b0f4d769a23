//! One connection to an engine worker: the page's to its engine, and the
//! engine's to each of its helpers. Requests go out numbered and replies come
//! back to whoever asked; messages sent before the worker's `Ready` wait for
//! it (it drops what comes earlier); when the worker dies or garbles a
//! message, every waiting request fails saying why, and so does every later one.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use futures_channel::oneshot;
use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{ErrorEvent, MessageEvent, Worker};

use super::{js_err, resolve};
use crate::protocol::{decode, encode, FromWorker, Reply, Request, ToWorker};

/// The loader trunk writes beside the page for the worker binary.
const WORKER_SCRIPT: &str = "bertlab-worker_loader.js";

/// What a request to a stopped worker answers.
fn stopped(why: &str) -> String {
    format!("the engine worker stopped ({why}); load a model again")
}

struct State {
    worker: Worker,
    /// Messages waiting for the worker's `Ready`.
    queued: RefCell<Option<Vec<Uint8Array>>>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Reply>>>,
    next: Cell<u64>,
    /// Why the worker stopped, once it has.
    lost: RefCell<Option<String>>,
    on_lost: Box<dyn Fn(&str)>,
}

impl State {
    /// Lets the worker go and fails every waiting request.
    fn lose(&self, why: String) {
        if self.lost.borrow().is_some() {
            return;
        }
        *self.lost.borrow_mut() = Some(why.clone());
        self.worker.terminate();
        self.queued.borrow_mut().take();
        let pending: Vec<_> = self.pending.borrow_mut().drain().collect();
        for (_, tx) in pending {
            let _ = tx.send(Reply::failed(stopped(&why)));
        }
        (self.on_lost)(&why);
    }

    fn post(&self, array: &Uint8Array) -> Result<(), String> {
        self.worker.post_message_with_transfer(array, &Array::of1(&array.buffer())).map_err(|e| js_err("cannot reach the engine worker", e))
    }
}

pub struct EngineWorker {
    state: Rc<State>,
    _onmessage: Closure<dyn Fn(MessageEvent)>,
    _onerror: Closure<dyn Fn(ErrorEvent)>,
}

impl EngineWorker {
    /// Starts an engine worker; what it says unasked (run events, the
    /// backend) goes to `on_event`, and `on_lost` hears why it stopped when it does.
    pub fn start(on_event: impl Fn(FromWorker) + 'static, on_lost: impl Fn(&str) + 'static) -> Result<EngineWorker, String> {
        let worker = Worker::new(&resolve(WORKER_SCRIPT)).map_err(|e| js_err("cannot start the engine worker", e))?;
        let state = Rc::new(State {
            worker,
            queued: RefCell::new(Some(Vec::new())),
            pending: RefCell::new(HashMap::new()),
            next: Cell::new(1),
            lost: RefCell::new(None),
            on_lost: Box::new(on_lost),
        });
        let s = state.clone();
        let onmessage = Closure::<dyn Fn(MessageEvent)>::new(move |ev: MessageEvent| {
            let bytes = Uint8Array::new(&ev.data()).to_vec();
            match decode::<FromWorker>(&bytes) {
                Ok(FromWorker::Ready) => {
                    let queued = s.queued.borrow_mut().take().unwrap_or_default();
                    if let Err(e) = queued.iter().try_for_each(|m| s.post(m)) {
                        s.lose(e);
                    }
                }
                Ok(FromWorker::Reply { id, reply }) => {
                    let tx = s.pending.borrow_mut().remove(&id);
                    if let Some(tx) = tx {
                        let _ = tx.send(reply);
                    }
                }
                Ok(event) => on_event(event),
                Err(e) => s.lose(e),
            }
        });
        let s = state.clone();
        let onerror = Closure::<dyn Fn(ErrorEvent)>::new(move |ev: ErrorEvent| s.lose(ev.message()));
        state.worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        state.worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
        Ok(EngineWorker { state, _onmessage: onmessage, _onerror: onerror })
    }

    /// Whether the worker has stopped (every request to it fails).
    pub fn is_lost(&self) -> bool {
        self.state.lost.borrow().is_some()
    }

    /// Sends `request` now (or queues it until the worker is ready); the
    /// future yields the reply, or a failure saying why none came.
    pub fn call(&self, request: Request) -> impl Future<Output = Reply> + 'static {
        let s = &self.state;
        let sent = (|| {
            if let Some(why) = s.lost.borrow().as_ref() {
                return Err(stopped(why));
            }
            let id = s.next.get();
            s.next.set(id + 1);
            let array = Uint8Array::from(encode(&ToWorker { id, request })?.as_slice());
            match s.queued.borrow_mut().as_mut() {
                Some(queue) => queue.push(array),
                None => s.post(&array)?,
            }
            let (tx, rx) = oneshot::channel();
            s.pending.borrow_mut().insert(id, tx);
            Ok(rx)
        })();
        async move {
            match sent {
                Ok(rx) => rx.await.unwrap_or_else(|_| Reply::failed("the engine worker stopped")),
                Err(e) => Reply::failed(e),
            }
        }
    }
}

impl Drop for EngineWorker {
    /// A connection let go stops its worker (its handlers go with it).
    fn drop(&mut self) {
        self.state.worker.set_onmessage(None);
        self.state.worker.set_onerror(None);
        self.state.worker.terminate();
    }
}

//! The page's side of its engine worker: requests out, replies and run
//! events back. The worker starts on first use; if it dies (a crash, memory),
//! every waiting request gets a one-line error and the next one starts a
//! fresh worker (with no model loaded, which the reply says).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use bertlab::browser::{js_err, resolve};
use bertlab::protocol::{decode, encode, FromWorker, Reply, Request, RunEvent, ToWorker};
use futures_channel::oneshot;
use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{ErrorEvent, MessageEvent, Worker};

/// The loader trunk writes beside the page for the worker binary.
const WORKER_SCRIPT: &str = "bertlab-worker_loader.js";

struct Client {
    worker: Worker,
    /// Messages waiting for the worker's `Ready` (it drops what comes before).
    queued: RefCell<Option<Vec<Uint8Array>>>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Reply>>>,
    next: Cell<u64>,
    _onmessage: Closure<dyn Fn(MessageEvent)>,
    _onerror: Closure<dyn Fn(ErrorEvent)>,
}

/// Where run events go.
type RunListener = Rc<dyn Fn(RunEvent)>;

thread_local! {
    static CLIENT: RefCell<Option<Rc<Client>>> = const { RefCell::new(None) };
    /// Where run events go (the Fine-tune page).
    static RUN_EVENTS: RefCell<Option<RunListener>> = const { RefCell::new(None) };
}

/// Fails every waiting request and lets the worker go.
fn lost(why: String) {
    let client = CLIENT.with(|c| c.borrow_mut().take());
    if let Some(c) = client {
        c.worker.terminate();
        for (_, tx) in c.pending.borrow_mut().drain() {
            let _ = tx.send(Reply::failed(format!("the engine worker stopped ({why}); load a model again")));
        }
    }
}

fn start() -> Result<Rc<Client>, String> {
    let worker = Worker::new(&resolve(WORKER_SCRIPT)).map_err(|e| js_err("cannot start the engine worker", e))?;
    let onmessage = Closure::<dyn Fn(MessageEvent)>::new(|ev: MessageEvent| {
        let bytes = Uint8Array::new(&ev.data()).to_vec();
        match decode::<FromWorker>(&bytes) {
            Ok(FromWorker::Ready) => {
                if let Some(c) = CLIENT.with(|c| c.borrow().clone()) {
                    for message in c.queued.borrow_mut().take().unwrap_or_default() {
                        if let Err(e) = send(&c.worker, &message) {
                            lost(e);
                        }
                    }
                }
            }
            Ok(FromWorker::Reply { id, reply }) => {
                let tx = CLIENT.with(|c| c.borrow().as_ref().and_then(|c| c.pending.borrow_mut().remove(&id)));
                if let Some(tx) = tx {
                    let _ = tx.send(reply);
                }
            }
            Ok(FromWorker::Run(event)) => {
                if let Some(f) = RUN_EVENTS.with(|r| r.borrow().clone()) {
                    f(event);
                }
            }
            Err(e) => lost(e),
        }
    });
    let onerror = Closure::<dyn Fn(ErrorEvent)>::new(|ev: ErrorEvent| lost(ev.message()));
    worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
    Ok(Rc::new(Client {
        worker,
        queued: RefCell::new(Some(Vec::new())),
        pending: RefCell::new(HashMap::new()),
        next: Cell::new(1),
        _onmessage: onmessage,
        _onerror: onerror,
    }))
}

fn client() -> Result<Rc<Client>, String> {
    if let Some(c) = CLIENT.with(|c| c.borrow().clone()) {
        return Ok(c);
    }
    let c = start()?;
    CLIENT.with(|slot| *slot.borrow_mut() = Some(c.clone()));
    Ok(c)
}

/// Asks the engine worker; its reply, or a failure saying why there is none.
pub async fn call(request: Request) -> Reply {
    let sent = (|| {
        let c = client()?;
        let id = c.next.get();
        c.next.set(id + 1);
        let bytes = encode(&ToWorker { id, request })?;
        let (tx, rx) = oneshot::channel();
        c.pending.borrow_mut().insert(id, tx);
        let array = Uint8Array::from(bytes.as_slice());
        match c.queued.borrow_mut().as_mut() {
            Some(queue) => queue.push(array),
            None => send(&c.worker, &array)?,
        }
        Ok::<_, String>(rx)
    })();
    match sent {
        Ok(rx) => rx.await.unwrap_or_else(|_| Reply::failed("the engine worker stopped")),
        Err(e) => Reply::failed(e),
    }
}

/// Posts one message, its buffer transferred.
fn send(worker: &Worker, array: &Uint8Array) -> Result<(), String> {
    worker.post_message_with_transfer(array, &Array::of1(&array.buffer())).map_err(|e| js_err("cannot reach the engine worker", e))
}

/// Where run events go from now on.
pub fn on_run_events(f: impl Fn(RunEvent) + 'static) {
    RUN_EVENTS.with(|r| *r.borrow_mut() = Some(Rc::new(f)));
}

/// A reply that should be `Ok`, as a result.
pub fn ok(reply: Reply) -> Result<(), String> {
    match reply {
        Reply::Ok => Ok(()),
        Reply::Failed { message, .. } => Err(message),
        other => Err(format!("the engine answered {other:?}")),
    }
}

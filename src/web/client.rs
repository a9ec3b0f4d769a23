//! The page's side of its engine worker: requests out, replies and run
//! events back. The worker starts on first use; if it dies (a crash, memory),
//! every waiting request fails saying so, and the next request starts a
//! fresh worker (with no model loaded, which the reply says).

use std::cell::RefCell;
use std::rc::Rc;

use bertlab::browser::engine_worker::EngineWorker;
use bertlab::protocol::{FromWorker, Reply, Request, RunEvent};
use bertlab::ModelIdentity;

/// Where run events go.
type RunListener = Rc<dyn Fn(RunEvent)>;
/// Where a loaded model's new backend words go.
type BackendListener = Rc<dyn Fn(ModelIdentity, String)>;
/// Hears why the worker stopped.
type LostListener = Rc<dyn Fn(&str)>;

thread_local! {
    static CLIENT: RefCell<Option<Rc<EngineWorker>>> = const { RefCell::new(None) };
    /// Where run events go (the Fine-tune page).
    static RUN_EVENTS: RefCell<Option<RunListener>> = const { RefCell::new(None) };
    /// Who hears that the worker stopped (the Fine-tune page: a run going there ends).
    static LOST: RefCell<Option<LostListener>> = const { RefCell::new(None) };
    /// Where backend changes go (the loader's banner).
    static BACKEND: RefCell<Option<BackendListener>> = const { RefCell::new(None) };
}

fn client() -> Result<Rc<EngineWorker>, String> {
    if let Some(c) = CLIENT.with(|c| c.borrow().clone()) {
        return Ok(c);
    }
    let on_event = |event| match event {
        FromWorker::Run(event) => {
            if let Some(f) = RUN_EVENTS.with(|r| r.borrow().clone()) {
                f(event);
            }
        }
        FromWorker::Backend { model, backend } => {
            if let Some(f) = BACKEND.with(|b| b.borrow().clone()) {
                f(model, backend);
            }
        }
        FromWorker::Ready | FromWorker::Reply { .. } => {}
    };
    // the next request starts a fresh worker; a run that was going there ends, said why
    let on_lost = |why: &str| {
        drop(CLIENT.with(|c| c.borrow_mut().take()));
        if let Some(f) = LOST.with(|l| l.borrow().clone()) {
            f(why);
        }
    };
    let c = Rc::new(EngineWorker::start(on_event, on_lost)?);
    CLIENT.with(|slot| *slot.borrow_mut() = Some(c.clone()));
    Ok(c)
}

/// Starts the engine worker now rather than at the first request (a
/// failure to start is reported by that request).
pub fn start_worker() {
    let _ = client();
}

/// Asks the engine worker; its reply, or a failure saying why there is none.
pub async fn call(request: Request) -> Reply {
    match client() {
        Ok(c) => c.call(request).await,
        Err(e) => Reply::failed(e),
    }
}

/// Where run events go from now on.
pub fn on_run_events(f: impl Fn(RunEvent) + 'static) {
    RUN_EVENTS.with(|r| *r.borrow_mut() = Some(Rc::new(f)));
}

/// Who hears from now on that the worker stopped, and why.
pub fn on_worker_lost(f: impl Fn(&str) + 'static) {
    LOST.with(|l| *l.borrow_mut() = Some(Rc::new(f)));
}

/// Where a loaded model's new backend words go from now on.
pub fn on_backend(f: impl Fn(ModelIdentity, String) + 'static) {
    BACKEND.with(|b| *b.borrow_mut() = Some(Rc::new(f)));
}

/// A reply that should be `Ok`, as a result.
pub fn ok(reply: Reply) -> Result<(), String> {
    match reply {
        Reply::Ok => Ok(()),
        Reply::Failed { message, .. } => Err(message),
        other => Err(format!("the engine answered {other:?}")),
    }
}

//! What the page and its engine worker both need from the browser, in
//! whichever global scope they run (a window or a worker): errors, timers,
//! URLs, and storage.

#[cfg(feature = "web")]
pub mod engine_worker;
pub mod storage;

use js_sys::{Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// A JavaScript error as one line, after `context`.
pub fn js_err(context: &str, e: JsValue) -> String {
    let msg = e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).or_else(|| e.as_string()).unwrap_or_else(|| format!("{e:?}"));
    format!("{context}: {msg}")
}

/// A property of the global scope (`caches`, `navigator`, `location`…).
pub fn global(name: &str) -> Option<JsValue> {
    Reflect::get(&js_sys::global(), &name.into()).ok().filter(|v| !v.is_undefined() && !v.is_null())
}

/// An absolute URL for a path relative to the page (a worker's scripts sit beside it).
pub fn resolve(path: &str) -> String {
    let base = global("location").and_then(|l| Reflect::get(&l, &"href".into()).ok()).and_then(|h| h.as_string()).unwrap_or_default();
    web_sys::Url::new_with_base(path, &base).map(|u| u.href()).unwrap_or_else(|_| path.to_string())
}

/// Lets the scope handle its events (input, paint, messages) between long-running steps.
pub async fn yield_now() {
    let Some(set_timeout) = global("setTimeout").and_then(|f| f.dyn_into::<Function>().ok()) else { return };
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = set_timeout.call2(&JsValue::NULL, &resolve, &JsValue::from(0));
    });
    let _ = JsFuture::from(promise).await;
}

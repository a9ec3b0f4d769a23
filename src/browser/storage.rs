//! The browser's storage, through the Cache API: put, get, list and delete
//! byte blobs by URL, with a full quota reported (never swallowed), and the
//! storage estimate and persistence the page shows.

use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, CacheStorage, Request, Response, ResponseInit};

use super::{global, js_err};
pub use crate::protocol::Estimate;

/// The header our stored responses carry their size in.
pub const SIZE_HEADER: &str = "x-bertlab-bytes";

pub async fn open(name: &str) -> Result<Cache, String> {
    let caches: CacheStorage = global("caches").ok_or("this browser gives the page no Cache storage")?.unchecked_into();
    let cache = JsFuture::from(caches.open(name)).await.map_err(|e| js_err("cannot open the browser's cache", e))?;
    Ok(cache.unchecked_into())
}

/// The bytes of a response.
pub async fn response_bytes(resp: &Response) -> Result<Vec<u8>, String> {
    let buf = JsFuture::from(resp.array_buffer().map_err(|e| js_err("read", e))?).await.map_err(|e| js_err("read", e))?;
    Ok(Uint8Array::new(&buf).to_vec())
}

/// Whether a storage error is the quota being full.
fn is_quota(e: &JsValue) -> bool {
    e.dyn_ref::<web_sys::DomException>().is_some_and(|d| d.name() == "QuotaExceededError")
        || e.dyn_ref::<js_sys::Error>().is_some_and(|d| d.name() == "QuotaExceededError")
}

/// Stores `bytes` under `url`; a full quota says so, with the size it needed.
pub async fn put(cache: &Cache, url: &str, bytes: &[u8]) -> Result<(), String> {
    let headers = web_sys::Headers::new().map_err(|e| js_err("storage", e))?;
    headers.set(SIZE_HEADER, &bytes.len().to_string()).map_err(|e| js_err("storage", e))?;
    let init = ResponseInit::new();
    init.set_headers(&headers);
    let body = Uint8Array::from(bytes);
    let resp = Response::new_with_opt_buffer_source_and_init(Some(&body), &init).map_err(|e| js_err("storage", e))?;
    JsFuture::from(cache.put_with_str(url, &resp)).await.map(|_| ()).map_err(|e| {
        if is_quota(&e) {
            format!("the browser's storage is full: {} could not be saved", megabytes(bytes.len() as f64))
        } else {
            js_err("cannot save to the browser's storage", e)
        }
    })
}

pub async fn get(cache: &Cache, url: &str) -> Option<Vec<u8>> {
    let hit = JsFuture::from(cache.match_with_str(url)).await.ok()?;
    let resp: Response = hit.dyn_into().ok()?;
    response_bytes(&resp).await.ok()
}

pub async fn delete(cache: &Cache, url: &str) -> Result<(), String> {
    JsFuture::from(cache.delete_with_str(url)).await.map(|_| ()).map_err(|e| js_err("cannot delete from the browser's storage", e))
}

/// Every stored URL with its size.
pub async fn entries(cache: &Cache) -> Result<Vec<(String, u64)>, String> {
    let keys: js_sys::Array = JsFuture::from(cache.keys()).await.map_err(|e| js_err("cache", e))?.unchecked_into();
    let mut out = Vec::new();
    for req in keys.iter() {
        let req: Request = req.unchecked_into();
        let resp = JsFuture::from(cache.match_with_request(&req)).await.unwrap_or(JsValue::UNDEFINED);
        let size = resp
            .dyn_into::<Response>()
            .ok()
            .and_then(|r| r.headers().get(SIZE_HEADER).ok().flatten())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        out.push((req.url(), size));
    }
    Ok(out)
}

impl Estimate {
    pub fn free(&self) -> f64 {
        (self.quota - self.used).max(0.0)
    }

    /// Fails, saying what is missing, when `bytes` more would not fit.
    pub fn check_room(&self, what: &str, bytes: f64) -> Result<(), String> {
        if bytes > self.free() {
            return Err(format!(
                "the browser's storage is full: {what} needs {}, {} are free (delete saved runs or cached models)",
                megabytes(bytes),
                megabytes(self.free())
            ));
        }
        Ok(())
    }
}

fn storage_manager() -> Option<web_sys::StorageManager> {
    let navigator = global("navigator")?;
    js_sys::Reflect::get(&navigator, &"storage".into()).ok().filter(|s| !s.is_undefined()).map(JsCast::unchecked_into)
}

pub async fn estimate() -> Option<Estimate> {
    let manager = storage_manager()?;
    let e: web_sys::StorageEstimate = JsFuture::from(manager.estimate().ok()?).await.ok()?.unchecked_into();
    let persisted = match manager.persisted() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|v| v.as_bool()).unwrap_or(false),
        Err(_) => false,
    };
    Some(Estimate { used: e.get_usage()?, quota: e.get_quota()?, persisted })
}

/// Asks the browser to keep the page's storage under pressure (saved runs);
/// whether it agreed.
pub async fn persist() -> bool {
    let Some(manager) = storage_manager() else { return false };
    match manager.persist() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|v| v.as_bool()).unwrap_or(false),
        Err(_) => false,
    }
}

/// A size for people (binary units, as the browser's own tools show them).
pub fn megabytes(bytes: f64) -> String {
    const K: f64 = 1024.0;
    if bytes >= K * K * K {
        format!("{:.1} GB", bytes / (K * K * K))
    } else if bytes >= K * K {
        format!("{:.1} MB", bytes / (K * K))
    } else {
        format!("{:.1} kB", bytes / K)
    }
}

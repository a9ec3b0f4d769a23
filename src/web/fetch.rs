//! Getting model files into the tab: downloads with progress and cancel,
//! a Cache API store so a reload does not download again, and files the
//! user picks or drops.

use bertlab::browser::storage::{self, response_bytes};
pub use bertlab::browser::{js_err, resolve};
use bertlab::ModelFiles;
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Request, RequestInit, Response};

const CACHE: &str = "bertlab-models-v1";

/// The most a download reserves from its Content-Length before bytes arrive.
const PREALLOCATE_BYTES: u64 = 64 << 20;

/// One file's download, as the progress bars show it.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub file: String,
    pub loaded: u64,
    pub total: Option<u64>,
    pub bytes_per_s: f64,
    pub from_cache: bool,
}

/// The page's window (the page only runs in one).
pub fn window() -> web_sys::Window {
    web_sys::window().expect("the page runs in a window")
}

/// The Hugging Face hub, where model ids resolve unless `?hub=` says otherwise.
pub const DEFAULT_HUB: &str = "https://huggingface.co";

/// `url`'s origin (scheme, host and port), as the browser sees it.
pub fn origin_of(url: &str) -> Option<String> {
    web_sys::Url::new(url).ok().map(|u| u.origin())
}

/// The origin of `url` when it is one the user has not chosen by opening
/// the page: neither this page's own nor `trusted` (the default hub, the
/// default datasets server). A link may name such an origin only if the
/// user agrees before anything is fetched from it.
pub fn foreign_origin(url: &str, trusted: &str) -> Option<String> {
    let origin = origin_of(url)?;
    let page = window().location().origin().ok();
    (Some(&origin) != page.as_ref() && Some(&origin) != origin_of(trusted).as_ref()).then_some(origin)
}

/// Where the files of a model are: a hub id, a URL, or the bundled default.
pub fn folder_url(source: &str, hub: &str) -> String {
    let s = source.trim();
    if s.contains("://") {
        if s.ends_with('/') {
            s.to_string()
        } else {
            format!("{s}/")
        }
    } else {
        // like from_pretrained: https://huggingface.co/{id}/resolve/main/{file}
        format!("{}/{}/resolve/main/", hub.trim_end_matches('/'), s.trim_matches('/'))
    }
}

/// Fetches one file, from the cache when it is there. `Ok(None)` for a 404
/// (optional files). `on_progress` is called as bytes arrive; a file that
/// could not be cached (a full storage) is reported to `not_cached`.
async fn fetch_file(
    url: &str,
    file: &str,
    signal: &AbortSignal,
    on_progress: &dyn Fn(Progress),
    not_cached: &mut Vec<String>,
) -> Result<Option<Vec<u8>>, String> {
    let cache = storage::open(CACHE).await.ok();
    if let Some(cache) = &cache {
        if let Some(bytes) = storage::get(cache, url).await {
            let n = bytes.len() as u64;
            on_progress(Progress { file: file.into(), loaded: n, total: Some(n), bytes_per_s: 0.0, from_cache: true });
            return Ok(Some(bytes));
        }
    }

    let init = RequestInit::new();
    init.set_signal(Some(signal));
    let request = Request::new_with_str_and_init(url, &init).map_err(|e| js_err(url, e))?;
    let resp: Response = JsFuture::from(window().fetch_with_request(&request))
        .await
        .map_err(|e| if signal.aborted() { "cancelled".to_string() } else { js_err(&format!("cannot fetch {url}"), e) })?
        .unchecked_into();
    if resp.status() == 404 {
        return Ok(None);
    }
    if !resp.ok() {
        return Err(format!("{url}: HTTP {} {}", resp.status(), resp.status_text()));
    }
    let total = resp.headers().get("content-length").ok().flatten().and_then(|v| v.parse::<u64>().ok());
    let max = bertlab::model::max_file_bytes(file);
    let too_large = |n: u64| format!("{url} is {n} bytes: more than a model's {file} may hold ({max})");
    if let Some(n) = total.filter(|&n| n > max) {
        return Err(too_large(n));
    }
    let body = resp.body().ok_or_else(|| format!("{url}: empty response"))?;
    let reader: web_sys::ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let start = web_time::Instant::now();
    // the header is the server's word, not the bytes: reserve a bounded part of it, grow as bytes arrive
    let mut bytes: Vec<u8> = Vec::with_capacity(total.unwrap_or(0).min(PREALLOCATE_BYTES) as usize);
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(|e| {
            if signal.aborted() {
                "cancelled".to_string()
            } else {
                js_err(&format!("download of {file} failed"), e)
            }
        })?;
        if Reflect::get(&chunk, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true) {
            break;
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into()).map_err(|e| js_err(file, e))?.unchecked_into();
        if bytes.len() as u64 + u64::from(value.length()) > max {
            return Err(too_large(bytes.len() as u64 + u64::from(value.length())));
        }
        bytes.extend(value.to_vec());
        let secs = start.elapsed().as_secs_f64().max(1e-3);
        on_progress(Progress {
            file: file.into(),
            loaded: bytes.len() as u64,
            total,
            bytes_per_s: bytes.len() as f64 / secs,
            from_cache: false,
        });
    }
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    let n = bytes.len() as u64;
    on_progress(Progress { file: file.into(), loaded: n, total: Some(n), bytes_per_s: n as f64 / secs, from_cache: false });
    // a file that cannot be cached costs the next reload a download, and the user hears why
    if let Some(cache) = &cache {
        if let Err(e) = storage::put(cache, url, &bytes).await {
            not_cached.push(format!("{file}: {e}"));
        }
    }
    Ok(Some(bytes))
}

/// A downloaded model, and the files the cache could not keep.
pub struct Fetched {
    pub files: ModelFiles,
    pub not_cached: Vec<String>,
}

/// Fetches a model folder: config first (a wrong URL fails fast), then the
/// tokenizer (tokenizer.json, else vocab.txt), then the weights.
pub async fn fetch_model(name: String, folder: &str, signal: &AbortSignal, on_progress: &dyn Fn(Progress)) -> Result<Fetched, String> {
    let mut not_cached = Vec::new();
    let mut get = async |file: &'static str| fetch_file(&format!("{folder}{file}"), file, signal, on_progress, &mut not_cached).await;
    let config_json = get("config.json").await?.ok_or_else(|| format!("{folder}config.json was not found (404)"))?;
    let tokenizer_json = get("tokenizer.json").await?;
    let vocab_txt = if tokenizer_json.is_none() { get("vocab.txt").await? } else { None };
    let tokenizer_config_json = get("tokenizer_config.json").await?;
    let model_safetensors = get("model.safetensors").await?.ok_or_else(|| format!("{folder}model.safetensors was not found (404)"))?;
    let files = ModelFiles {
        name,
        config_json: Some(config_json),
        model_safetensors: Some(model_safetensors),
        tokenizer_json,
        vocab_txt,
        tokenizer_config_json,
    };
    Ok(Fetched { files, not_cached })
}

/// Files picked or dropped by the user, matched by name. Returns the files and
/// the names that were not model files.
pub async fn read_dropped(files: Vec<web_sys::File>) -> Result<(ModelFiles, Vec<String>), String> {
    let mut m = ModelFiles { name: "dropped files".into(), ..ModelFiles::default() };
    let mut ignored = Vec::new();
    for f in files {
        let name = f.name();
        let slot = match name.as_str() {
            "config.json" => &mut m.config_json,
            "model.safetensors" => &mut m.model_safetensors,
            "tokenizer.json" => &mut m.tokenizer_json,
            "vocab.txt" => &mut m.vocab_txt,
            "tokenizer_config.json" => &mut m.tokenizer_config_json,
            _ => {
                // not read at all: a dropped video costs nothing
                ignored.push(name);
                continue;
            }
        };
        let max = bertlab::model::max_file_bytes(&name);
        if f.size() > max as f64 {
            return Err(format!("{name} is {} bytes: more than a model's {name} may hold ({max})", f.size()));
        }
        let bytes = JsFuture::from(f.array_buffer()).await.map_err(|e| js_err(&name, e))?;
        *slot = Some(Uint8Array::new(&bytes).to_vec());
    }
    Ok((m, ignored))
}

/// A cached model folder and the bytes its files take.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedModel {
    pub folder: String,
    pub bytes: u64,
    pub files: Vec<String>,
}

pub async fn cached_models() -> Result<Vec<CachedModel>, String> {
    let cache = storage::open(CACHE).await?;
    let mut out: Vec<CachedModel> = Vec::new();
    for (url, size) in storage::entries(&cache).await? {
        let Some(cut) = url.rfind('/') else { continue };
        let (folder, file) = (url[..=cut].to_string(), url[cut + 1..].to_string());
        match out.iter_mut().find(|m| m.folder == folder) {
            Some(m) => {
                m.bytes += size;
                m.files.push(file);
            }
            None => out.push(CachedModel { folder, bytes: size, files: vec![file] }),
        }
    }
    Ok(out)
}

/// Deletes every cached file of a model folder.
pub async fn delete_cached(folder: &str) -> Result<(), String> {
    let cache = storage::open(CACHE).await?;
    for (url, _) in storage::entries(&cache).await? {
        if url.strip_prefix(folder).is_some_and(|rest| !rest.contains('/')) {
            storage::delete(&cache, &url).await?;
        }
    }
    Ok(())
}

/// The page's query parameter `name`, if set (`?hub=`, `?model=`, `?backend=`).
pub fn query_param(name: &str) -> Option<String> {
    let search = window().location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(name)
}

/// Offers bytes as a file download.
pub fn download(name: &str, bytes: &[u8], mime: &str) -> Result<(), String> {
    let parts = js_sys::Array::of1(&Uint8Array::from(bytes));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &opts).map_err(|e| js_err("download", e))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| js_err("download", e))?;
    let document = window().document().ok_or("no document")?;
    let a: web_sys::HtmlAnchorElement = document.create_element("a").map_err(|e| js_err("download", e))?.unchecked_into();
    a.set_href(&url);
    a.set_download(name);
    a.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// Fetches a text file next to the page; `None` when it is not there.
pub async fn fetch_text(path: &str) -> Option<String> {
    let resp: Response = JsFuture::from(window().fetch_with_str(&resolve(path))).await.ok()?.dyn_into().ok()?;
    if !resp.ok() {
        return None;
    }
    String::from_utf8(response_bytes(&resp).await.ok()?).ok()
}

/// One split of a dataset of the Hugging Face hub, through its datasets
/// server's JSON rows API (the hub stores GLUE and CoNLL as parquet), 100
/// rows a request: each row's object. `base` is
/// `https://datasets-server.huggingface.co` (or `?datasets=`).
pub async fn hub_rows(
    base: &str,
    (dataset, config): (&str, &str),
    split: &str,
    on_progress: &dyn Fn(usize, usize),
) -> Result<Vec<serde_json::Value>, String> {
    let mut rows_out = Vec::new();
    let mut total = usize::MAX;
    while rows_out.len() < total {
        let url = format!(
            "{}/rows?dataset={}&config={config}&split={split}&offset={}&length=100",
            base.trim_end_matches('/'),
            dataset.replace('/', "%2F"),
            rows_out.len()
        );
        let resp: Response =
            JsFuture::from(window().fetch_with_str(&url)).await.map_err(|e| js_err(&format!("cannot fetch {url}"), e))?.unchecked_into();
        if !resp.ok() {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        let page: serde_json::Value =
            serde_json::from_slice(&response_bytes(&resp).await?).map_err(|e| format!("{url}: not the datasets server's JSON ({e})"))?;
        total = page["num_rows_total"].as_u64().ok_or_else(|| format!("{url}: no num_rows_total"))? as usize;
        let rows = page["rows"].as_array().ok_or_else(|| format!("{url}: no rows"))?;
        if rows.is_empty() {
            break;
        }
        rows_out.extend(rows.iter().map(|r| r["row"].clone()));
        on_progress(rows_out.len(), total);
    }
    Ok(rows_out)
}

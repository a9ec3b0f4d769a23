//! `--out`: where a run writes its result. Checked before the first step
//! (refused when it holds something, unless `--overwrite-output-dir`, as
//! transformers names it; refused when it is or holds the model being
//! trained; its folder proven writable), then written in a staging folder
//! beside it and put in its place whole, so a failure never leaves half a
//! result or a stale file from an earlier one.

use std::path::{Path, PathBuf};

pub struct Destination {
    path: PathBuf,
    /// A fresh folder beside `path`, removed when dropped.
    staging: PathBuf,
}

impl Destination {
    pub fn prepare(out: &Path, model: &Path, overwrite: bool) -> Result<Self, String> {
        let name = out.file_name().ok_or_else(|| format!("--out {} names no file or folder", out.display()))?;
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let parent = parent.canonicalize().map_err(|e| format!("--out {}: its folder cannot be used: {e}", out.display()))?;
        let path = parent.join(name);
        if let Ok(model) = model.canonicalize() {
            if model.starts_with(&path) {
                return Err(format!(
                    "--out {} is (or holds) the model being trained, {}: choose another folder",
                    out.display(),
                    model.display()
                ));
            }
        }
        if holds_something(&path) && !overwrite {
            return Err(format!("--out {} already exists and is not empty: pass --overwrite-output-dir to replace it", out.display()));
        }
        let staging = parent.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        // proves the folder writable before any training: a read-only or full disk fails here, not after an hour
        std::fs::create_dir(&staging)
            .and_then(|_| std::fs::write(staging.join(".probe"), b"bertlab"))
            .and_then(|_| std::fs::remove_file(staging.join(".probe")))
            .map_err(|e| format!("cannot write beside --out {}: {e}", out.display()))?;
        Ok(Destination { path, staging })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `files` (name, bytes) as the folder `--out`, replacing what was there.
    pub fn write_folder(&self, files: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        let folder = self.staging.join("folder");
        std::fs::create_dir(&folder).map_err(|e| self.failed(e))?;
        for (name, bytes) in files {
            std::fs::write(folder.join(&name), bytes).map_err(|e| self.failed(e))?;
        }
        self.replace_with(&folder)
    }

    /// One file as `--out`, and `siblings` (extension, bytes) beside it (a head's `.config.json`).
    pub fn write_file(&self, bytes: &[u8], siblings: &[(&str, Vec<u8>)]) -> Result<(), String> {
        let staged = self.staging.join("file");
        std::fs::write(&staged, bytes).map_err(|e| self.failed(e))?;
        for (ext, b) in siblings {
            let dest = self.path.with_extension(ext);
            let tmp = self.staging.join(ext);
            std::fs::write(&tmp, b).and_then(|_| std::fs::rename(&tmp, &dest)).map_err(|e| self.failed(e))?;
        }
        self.replace_with(&staged)
    }

    /// Moves `staged` into `--out`'s place; what was there goes only once the new one is in.
    fn replace_with(&self, staged: &Path) -> Result<(), String> {
        let old = self.staging.join("old");
        let had = self.path.symlink_metadata().is_ok();
        if had {
            std::fs::rename(&self.path, &old).map_err(|e| self.failed(e))?;
        }
        if let Err(e) = std::fs::rename(staged, &self.path) {
            if had {
                let _ = std::fs::rename(&old, &self.path);
            }
            return Err(self.failed(e));
        }
        Ok(())
    }

    fn failed(&self, e: std::io::Error) -> String {
        format!("cannot write {}: {e}", self.path.display())
    }
}

impl Drop for Destination {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.staging);
    }
}

/// A file, or a folder with anything in it.
fn holds_something(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_some(),
        Err(_) => path.symlink_metadata().is_ok(),
    }
}

//! Files from disk (the CLI's, natively), read with bounds: only regular
//! files (a FIFO would hang the read, `/dev/zero` never ends), at most a
//! given size (a 2 GB data file is a mistake, not a dataset).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

pub use crate::task::MAX_DATA_BYTES;

/// The bytes of the regular file at `path`, refused past `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let cannot = |e: std::io::Error| Error::Io(format!("cannot read {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(Error::Io(format!("{} is not a regular file", path.display())));
    }
    if meta.len() > limit {
        return Err(Error::Io(format!("{} is {} bytes, more than the {limit} this file may hold", path.display(), meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // `take`: a file that grows while it is read stops at the bound all the same
    std::fs::File::open(path).and_then(|f| f.take(limit + 1).read_to_end(&mut bytes)).map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(Error::Io(format!("{} grew past {limit} bytes while it was read", path.display())));
    }
    Ok(bytes)
}

/// `read_bounded` as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> Result<String> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|_| Error::Io(format!("{} is not UTF-8 text", path.display())))
}

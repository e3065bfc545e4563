//! The manifest of one dataset: which partition files make up its current state.
//!
//! Partition files are immutable once written. A write produces new partitions and a new
//! manifest, written to a temporary file, fsynced and renamed over `manifest.json` — the rename
//! is the commit point. A crash before it leaves the old state; after it, the new one. Files that
//! no manifest names are leftovers of a crashed write and are removed when the dataset is opened.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::StoreError;

pub const MANIFEST_FILE: &str = "manifest.json";
const FORMAT_VERSION: u32 = 1;

/// One immutable Parquet file holding the bars `first_ms..=last_ms`, sorted and unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub file: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub rows: u64,
    pub bytes: u64,
}

/// The state of a dataset. Partitions are sorted by time and never overlap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// Incremented by every committed write.
    pub version: u64,
    pub symbol: String,
    pub timeframe: String,
    pub partitions: Vec<Partition>,
    pub updated_at_ms: i64,
    /// Where the most recent write came from (e.g. `ib`, `csv:AAPL_1h.csv`).
    #[serde(default)]
    pub source: String,
}

impl Manifest {
    pub fn empty(symbol: &str, timeframe: &str) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            version: 0,
            symbol: symbol.to_owned(),
            timeframe: timeframe.to_owned(),
            partitions: Vec::new(),
            updated_at_ms: 0,
            source: String::new(),
        }
    }

    pub fn rows(&self) -> u64 {
        self.partitions.iter().map(|p| p.rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.bytes).sum()
    }

    pub fn first_ms(&self) -> Option<i64> {
        self.partitions.first().map(|p| p.first_ms)
    }

    pub fn last_ms(&self) -> Option<i64> {
        self.partitions.last().map(|p| p.last_ms)
    }

    /// Reads `dir/manifest.json`; `None` if the dataset has none.
    pub fn load(dir: &Path) -> Result<Option<Self>, StoreError> {
        let path = dir.join(MANIFEST_FILE);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(StoreError::Corrupt(format!(
                "{}: unsupported format version {}",
                path.display(),
                manifest.format_version
            )));
        }
        Ok(Some(manifest))
    }

    /// Atomically replaces `dir/manifest.json` with `self`.
    pub fn commit(&self, dir: &Path) -> Result<(), StoreError> {
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        write_atomically(dir, MANIFEST_FILE, &json)
    }
}

/// Writes `name` in `dir` through a temporary file, fsync and rename, then fsyncs the directory
/// so the rename itself survives a power loss.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let mut file = fs::File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| StoreError::io(&tmp, e))?;
    file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, &target).map_err(|e| StoreError::io(&target, e))?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

//! Session files: `<sessions dir>/<id>.json` (`KTRDR_SESSIONS_DIR`, by default
//! `<models>/_sessions`), written atomically (temp file, fsync,
//! rename, fsync of the directory) so a crash leaves either the old or the new file, never a
//! torn one. File names are joined under the directory with the checked
//! [`ktrdr_market::path::join_under`].

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainingError};
use crate::record::SessionFile;

/// The default directory of session files under the models directory. The leading `_` keeps it
/// apart from strategy names in the model registry.
pub const SESSIONS_DIR: &str = "_sessions";

#[derive(Debug, Clone)]
pub struct SessionStore {
    dir: PathBuf,
}

fn io(path: &Path, e: impl std::fmt::Display) -> TrainingError {
    TrainingError::internal(format!("{}: {e}", path.display()))
}

impl SessionStore {
    /// The store of the session files in `sessions_dir` (the directory itself, not the models
    /// directory above it).
    pub fn new(sessions_dir: &Path) -> Self {
        Self {
            dir: sessions_dir.to_owned(),
        }
    }

    pub fn save(&self, file: &SessionFile) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let id = &file.record.id;
        let under = |name: String| {
            ktrdr_market::path::join_under(&self.dir, name).map_err(|why| io(&self.dir, why))
        };
        let path = under(format!("{id}.json"))?;
        let tmp = under(format!(".{id}.json.tmp"))?;
        let bytes = serde_json::to_vec(file).map_err(|e| io(&path, e))?;
        let mut out = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        out.write_all(&bytes).map_err(|e| io(&tmp, e))?;
        out.sync_all().map_err(|e| io(&tmp, e))?;
        drop(out);
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        // The rename itself is durable only once the directory is synced.
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Every readable session file; unreadable ones are logged and skipped so one bad file
    /// does not keep the host from starting.
    pub fn load_all(&self) -> Vec<SessionFile> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<SessionFile>(&b).map_err(|e| e.to_string()))
            {
                Ok(file) => out.push(file),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping unreadable session file")
                }
            }
        }
        out
    }
}

//! Store writes kept on disk when the store still refused them at shutdown, one JSON file each
//! under `storage_dir/unrecorded/`, named so that their order is the order they were handed
//! over; recorded at the next start before any camera runs.

use std::path::{Path, PathBuf};

use tracing::{error, info};

use super::StoreWrite;
use crate::store::StoreError;
use crate::store::writer::StoreHandle;

/// The spool directory of a storage directory.
pub fn dir(storage_dir: &Path) -> PathBuf {
    storage_dir.join("unrecorded")
}

/// Writes `write` into the spool `dir` (written aside, synced and renamed: a file there is
/// whole and survives a power cut). Returns its path.
pub fn put(dir: &Path, write: &StoreWrite) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let about = write
        .incident()
        .map_or_else(|| "camera-event".to_owned(), |id| id.to_string());
    let path = dir.join(format!("{nanos:024}-{about}.json"));
    crate::durable::write(&path, &serde_json::to_vec(write).expect("plain data"))?;
    Ok(path)
}

/// What [`record_spooled`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Replayed {
    /// Writes the store took (their files removed).
    pub recorded: usize,
    /// Files that cannot be read or that the store can never take (renamed `*.rejected`).
    pub rejected: usize,
    /// Writes left for the next start because the store refused them.
    pub left: usize,
}

/// Records the spooled writes of `storage_dir` in their order. A write the store refuses stops
/// the replay (the rest stay, in order, for the next start); one that can never be recorded is
/// renamed `*.rejected` with the reason logged.
pub fn record_spooled(storage_dir: &Path, store: &StoreHandle) -> Replayed {
    let dir = dir(storage_dir);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect(),
        Err(_) => return Replayed::default(),
    };
    files.sort();
    let mut out = Replayed::default();
    for (i, path) in files.iter().enumerate() {
        let write = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<StoreWrite>(&b).map_err(|e| e.to_string()));
        let result = match write {
            Ok(w) => w.apply(store).map_err(|e| match e {
                StoreError::UnknownIncident(_) => Some(e.to_string()),
                other => {
                    error!(path = %path.display(), error = %other,
                           "the store refuses a spooled incident event: it stays for the next start");
                    None
                }
            }),
            Err(e) => Err(Some(format!("unreadable: {e}"))),
        };
        match result {
            Ok(()) => {
                out.recorded += 1;
                if let Err(e) = std::fs::remove_file(path) {
                    error!(path = %path.display(), error = %e,
                           "recorded, but the spool file cannot be removed: remove it by hand before the next start");
                }
            }
            Err(Some(reason)) => {
                out.rejected += 1;
                let rejected = path.with_extension("rejected");
                error!(path = %path.display(), reason = %reason, kept_as = %rejected.display(),
                       "a spooled incident event can never be recorded");
                let _ = std::fs::rename(path, &rejected);
            }
            Err(None) => {
                out.left = files.len() - i;
                break;
            }
        }
    }
    if out != Replayed::default() {
        info!(
            recorded = out.recorded,
            rejected = out.rejected,
            left = out.left,
            "incident events kept at the last shutdown"
        );
    }
    out
}

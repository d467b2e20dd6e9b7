//! Files that survive a crash and a power cut: written aside, synced, renamed, the directory
//! synced. Used for evidence pictures, clips and spooled incident events, each of which a
//! database row (or the next start) counts on.

use std::path::Path;

/// Writes `bytes` to `path` through a temporary file (`*.tmp`, removed at the next start if a
/// crash leaves it) that is synced to disk before it is renamed, and syncs the directory after:
/// a reader never sees half a file, and once this returns the file survives a power cut, so the
/// store row recorded after it never names a file that is not there.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

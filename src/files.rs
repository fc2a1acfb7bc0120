//! File-system helpers shared by the trainer, sweeps and reports.
//!
//! * [`write_atomic`]: a file appears whole or not at all (temporary file beside it, fsync,
//!   rename, fsync of the folder), so a command that fails or is killed never leaves a
//!   half-written output or destroys the previous one.
//! * [`FileLock`]: an advisory lock (`flock`), held for as long as the value lives. A run
//!   directory and a sweep folder are each worked on by one process at a time: the second
//!   one gets a clear "in use" error instead of racing on the same files. The kernel drops a
//!   `flock` when its holder exits, however it exits (kill -9 included), so a lock never
//!   outlives a crash.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same folder (fsynced, then
/// renamed into place; the folder is fsynced after the rename). On an error the temporary
/// file is removed and `path` is as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?
        .to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => File::open(parent).and_then(|d| d.sync_all()),
        None => Ok(()),
    }
}

/// An exclusive advisory lock on a file, released when dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock on `path` (creating the file if needed) without waiting: `Ok(None)`
    /// if another process holds it.
    pub fn try_take(path: &Path) -> std::io::Result<Option<Self>> {
        use std::os::fd::AsRawFd;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a file descriptor we own; released when the file closes.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(Self { _file: file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporary() {
        let dir = std::env::temp_dir().join(format!("stackrl-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        // A target that cannot be replaced (a folder) is an error; nothing is left behind.
        let sub = dir.join("sub");
        std::fs::create_dir_all(sub.join("x")).unwrap();
        assert!(write_atomic(&sub, b"x").is_err());
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_holder_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("stackrl-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lock");
        let first = FileLock::try_take(&path).unwrap();
        assert!(first.is_some());
        // flock locks belong to the open file description: a second open conflicts even in
        // the same process.
        assert!(FileLock::try_take(&path).unwrap().is_none());
        drop(first);
        assert!(FileLock::try_take(&path).unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

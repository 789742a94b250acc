//! The file side of the store: the temporary folder, the lock that marks a
//! store instance as alive, temporary image files, and fsync helpers.
//!
//! Temporary files live in `<imageRootDir>/.pixstore-tmp/` and are named
//! `<owner>-<n>.tmp`; each open store holds an exclusive lock on
//! `<owner>.lock` there, so another process can tell a live writer's files
//! from the leftovers of a crashed one.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::Result;

/// Name of the temporary folder inside the image root.
pub const TEMP_DIR_NAME: &str = ".pixstore-tmp";

/// Age after which an unfinished lock file (a crash while opening) is removed.
const STALE_LOCKING_AGE: Duration = Duration::from_secs(60);

/// The lock that marks one open store instance as alive; released on drop.
#[derive(Debug)]
pub struct OwnerLock {
  file: File,
  path: PathBuf,
}

impl OwnerLock {
  /// Creates and locks `<owner>.lock`. It is locked under a hidden name first
  /// and then renamed, so no other process ever sees it unlocked.
  pub fn acquire(temp_dir: &Path, owner: &str) -> Result<OwnerLock> {
    let locking = temp_dir.join(format!(".{owner}.locking"));
    let file = OpenOptions::new().write(true).create_new(true).open(&locking)?;
    file.lock()?;
    let path = temp_dir.join(format!("{owner}.lock"));
    fs::rename(&locking, &path)?;
    Ok(OwnerLock { file, path })
  }
}

impl Drop for OwnerLock {
  fn drop(&mut self) {
    let _ = fs::remove_file(&self.path);
    let _ = self.file.unlock();
  }
}

/// Whether the store instance `owner` is gone: its lock file is missing or unlocked.
pub fn owner_is_dead(temp_dir: &Path, owner: &str) -> bool {
  match File::open(temp_dir.join(format!("{owner}.lock"))) {
    Ok(file) => file.try_lock().is_ok(),
    Err(_) => true,
  }
}

/// The owner a file of the temporary folder belongs to (`<owner>.lock`, `<owner>-<n>.tmp`).
pub fn owner_of(file_name: &str) -> Option<&str> {
  file_name.strip_suffix(".lock").or_else(|| {
    file_name
      .strip_suffix(".tmp")
      .and_then(|stem| stem.split_once('-').map(|(owner, _)| owner))
  })
}

/// Removes the files of dead owners from the temporary folder, and unfinished
/// lock files older than a minute. Files of live owners are left alone.
pub fn remove_dead_owners_files(temp_dir: &Path, own: &str) -> Result<()> {
  for entry in fs::read_dir(temp_dir)? {
    let entry = entry?;
    let name = entry.file_name();
    let Some(name) = name.to_str() else { continue };
    let stale = if name.starts_with('.') {
      let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
      age > STALE_LOCKING_AGE
    } else {
      owner_of(name).is_some_and(|owner| owner != own && owner_is_dead(temp_dir, owner))
    };
    if stale {
      remove_if_exists(&entry.path())?;
    }
  }
  Ok(())
}

/// Removes the temporary files of `owner` (not its lock), when it closes.
pub fn remove_owner_files(temp_dir: &Path, owner: &str) -> Result<()> {
  for entry in fs::read_dir(temp_dir)? {
    let entry = entry?;
    let name = entry.file_name();
    if name
      .to_str()
      .is_some_and(|name| name.ends_with(".tmp") && owner_of(name) == Some(owner))
    {
      remove_if_exists(&entry.path())?;
    }
  }
  Ok(())
}

/// Writes `bytes` to a new file at `path` (fsynced when `sync`); removes it again on failure.
pub fn write_new(path: &Path, bytes: &[u8], sync: bool) -> Result<()> {
  let result = (|| {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    if sync {
      file.sync_all()?;
    }
    Ok(())
  })();
  if result.is_err() {
    let _ = fs::remove_file(path);
  }
  result
}

/// Removes `path`; true if it existed.
pub fn remove_if_exists(path: &Path) -> Result<bool> {
  match fs::remove_file(path) {
    Ok(()) => Ok(true),
    Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
    Err(err) => Err(err.into()),
  }
}

/// Reads `path`, or `None` if it does not exist.
pub fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
  match fs::read(path) {
    Ok(bytes) => Ok(Some(bytes)),
    Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
    Err(err) => Err(err.into()),
  }
}

/// How [`place`] put a file where it belongs, which decides how to undo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
  /// Nothing was at the destination: the file was renamed there.
  Renamed,
  /// The destination's previous file and the new one swapped names
  /// (`renameat2(RENAME_EXCHANGE)`): the previous file is now at the source name.
  Exchanged,
  /// The destination's previous file was replaced and is gone (platforms or
  /// file systems without an atomic exchange): this cannot be undone.
  Replaced,
}

/// Moves `from` to `to` atomically so it can be undone until the caller commits:
/// where the file system supports it, a file already at `to` is exchanged
/// with `from` rather than overwritten. Readers of `to` see the old file or
/// the new one, never neither.
pub fn place(from: &Path, to: &Path) -> std::io::Result<Placed> {
  #[cfg(target_os = "linux")]
  match exchange(from, to) {
    Ok(()) => return Ok(Placed::Exchanged),
    // Nothing at `to` (or no `from`, which the rename reports): a plain
    // rename, undone by renaming back. Only the writer holding SQLite's write
    // lock places files, so nothing appears at `to` in between.
    Err(err) if err.kind() == ErrorKind::NotFound => return fs::rename(from, to).map(|()| Placed::Renamed),
    // EINVAL / ENOSYS / EOPNOTSUPP: this file system cannot exchange.
    Err(_) => {}
  }
  let existed = fs::symlink_metadata(to).is_ok();
  fs::rename(from, to)?;
  Ok(if existed { Placed::Replaced } else { Placed::Renamed })
}

/// Undoes [`place`]: the previous file goes back to `to` and the new one back
/// to `from`. A [`Placed::Replaced`] file cannot be undone (returns an error).
pub fn unplace(from: &Path, to: &Path, placed: Placed) -> std::io::Result<()> {
  match placed {
    Placed::Renamed => fs::rename(to, from),
    #[cfg(target_os = "linux")]
    Placed::Exchanged => exchange(from, to),
    #[cfg(not(target_os = "linux"))]
    Placed::Exchanged => unreachable!("only Linux exchanges"),
    Placed::Replaced => Err(std::io::Error::other("the previous file was replaced")),
  }
}

/// `renameat2(from, to, RENAME_EXCHANGE)`: swaps two names atomically.
#[cfg(target_os = "linux")]
fn exchange(from: &Path, to: &Path) -> std::io::Result<()> {
  use std::ffi::CString;
  use std::os::unix::ffi::OsStrExt;
  let from = CString::new(from.as_os_str().as_bytes())?;
  let to = CString::new(to.as_os_str().as_bytes())?;
  // SAFETY: both paths are NUL-terminated C strings that outlive the call.
  let result = unsafe {
    libc::syscall(
      libc::SYS_renameat2,
      libc::AT_FDCWD,
      from.as_ptr(),
      libc::AT_FDCWD,
      to.as_ptr(),
      libc::RENAME_EXCHANGE,
    )
  };
  if result == 0 {
    Ok(())
  } else {
    Err(std::io::Error::last_os_error())
  }
}

/// fsyncs a folder, so the renames and removals in it survive power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
  File::open(dir)?.sync_all()?;
  Ok(())
}

/// Milliseconds since the Unix epoch, like `Date.now()`.
pub fn now_ms() -> u64 {
  SystemTime::now()
    .duration_since(SystemTime::UNIX_EPOCH)
    .map(|d| d.as_millis() as u64)
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_held_lock_marks_its_owner_alive_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let lock = OwnerLock::acquire(dir.path(), "abc").unwrap();
    assert!(!owner_is_dead(dir.path(), "abc"));
    assert!(owner_is_dead(dir.path(), "other"));
    fs::write(dir.path().join("abc-1.tmp"), b"x").unwrap();
    fs::write(dir.path().join("gone-1.tmp"), b"x").unwrap();
    remove_dead_owners_files(dir.path(), "me").unwrap();
    assert!(dir.path().join("abc-1.tmp").exists());
    assert!(!dir.path().join("gone-1.tmp").exists());
    drop(lock);
    assert!(owner_is_dead(dir.path(), "abc"));
    remove_dead_owners_files(dir.path(), "me").unwrap();
    assert!(!dir.path().join("abc-1.tmp").exists());
  }

  #[test]
  fn owners_are_read_from_file_names() {
    assert_eq!(owner_of("abc.lock"), Some("abc"));
    assert_eq!(owner_of("abc-12.tmp"), Some("abc"));
    assert_eq!(owner_of("stray"), None);
  }
}

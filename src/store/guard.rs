//! Protection against a second copy of SQLite in the same process (for
//! example better-sqlite3, which pixstore and many apps load) opening the
//! store's database.
//!
//! SQLite coordinates connections through POSIX advisory locks, which belong
//! to a process: locks of one process never conflict with each other, and
//! closing *any* descriptor of a file drops *all* of the process's locks on
//! it. SQLite works around this for its own connections, but two copies of the
//! library cannot see each other. Measured with better-sqlite3 11 before this
//! guard existed: when its read-write connection closed, it took the
//! exclusive lock it uses to detect the last connection (our process's locks
//! did not stop it), checkpointed, and deleted the `-wal` and `-shm` files
//! while our connections still used them; every write after that went into a
//! WAL file without a name, and was gone once the store closed.
//!
//! While a store is open, this guard holds Linux open-file-description (OFD)
//! read locks on the byte ranges SQLite's own shared locks use: the database
//! file's shared range and the `-shm` file's "dead man switch" byte. OFD locks
//! belong to a descriptor, not a process, so they conflict with the other
//! copy's locks even inside this process, and nothing it closes releases
//! them. The other copy then cannot take the exclusive locks that delete the
//! WAL or reset the shared memory. Other processes see the same locks as
//! those of any open connection, so nothing changes for them. What the guard
//! cannot prevent (the other copy's `close()` still drops the POSIX locks of
//! our short read and write transactions) is documented in the README: don't
//! open the store with a second SQLite library in the same process.

use std::path::Path;

#[cfg(target_os = "linux")]
use std::fs::File;

/// SQLite's unix VFS lock bytes (`os.h`, `os_unix.c`): the database file's
/// shared range, and the dead-man-switch byte of the `-shm` file.
#[cfg(target_os = "linux")]
const PENDING_BYTE: i64 = 0x4000_0000;
#[cfg(target_os = "linux")]
const SHARED_FIRST: i64 = PENDING_BYTE + 2;
#[cfg(target_os = "linux")]
const SHARED_SIZE: i64 = 510;
#[cfg(target_os = "linux")]
const SHM_DMS_BYTE: i64 = (22 + 8) * 4 + 8;

/// Held while a store is open; dropping it releases the locks.
#[derive(Debug)]
pub struct ForeignSqliteGuard {
  #[cfg(target_os = "linux")]
  _held: Vec<File>,
}

impl ForeignSqliteGuard {
  /// Takes the locks on `database` and its `-shm` file (best effort: a file
  /// system without OFD locks, or a database that is not in WAL mode, gets
  /// no guard for what it lacks).
  pub fn acquire(database: &Path) -> ForeignSqliteGuard {
    #[cfg(target_os = "linux")]
    {
      let mut shm = database.as_os_str().to_owned();
      shm.push("-shm");
      let held = [
        (database.to_owned(), SHARED_FIRST, SHARED_SIZE),
        (shm.into(), SHM_DMS_BYTE, 1),
      ]
      .into_iter()
      .filter_map(|(path, start, length)| read_lock(&path, start, length))
      .collect();
      ForeignSqliteGuard { _held: held }
    }
    #[cfg(not(target_os = "linux"))]
    {
      let _ = database;
      ForeignSqliteGuard {}
    }
  }
}

/// An OFD read lock on `length` bytes at `start` of `path`, held by the returned file.
#[cfg(target_os = "linux")]
fn read_lock(path: &Path, start: i64, length: i64) -> Option<File> {
  use std::os::fd::AsRawFd;
  let file = File::open(path).ok()?;
  // SAFETY: `flock` is a plain C struct; all-zero is a valid value for it.
  let mut lock: libc::flock = unsafe { std::mem::zeroed() };
  lock.l_type = libc::F_RDLCK as _;
  lock.l_whence = libc::SEEK_SET as _;
  lock.l_start = start;
  lock.l_len = length;
  // SAFETY: the descriptor is open for the duration of the call and `lock` is valid.
  let result = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
  (result == 0).then_some(file)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
  use super::*;
  use rusqlite::Connection;

  /// A POSIX (process-owned) lock taken through another descriptor in this
  /// same process conflicts with the guard: exactly what stops a second copy
  /// of SQLite in the process.
  #[test]
  fn the_guard_blocks_exclusive_locks_taken_from_this_same_process() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch("CREATE TABLE t (x)").unwrap();
    let exclusive_possible = || {
      let other = File::options().read(true).write(true).open(&path).unwrap();
      let mut lock: libc::flock = unsafe { std::mem::zeroed() };
      lock.l_type = libc::F_WRLCK as _;
      lock.l_whence = libc::SEEK_SET as _;
      lock.l_start = SHARED_FIRST;
      lock.l_len = SHARED_SIZE;
      let result = unsafe { libc::fcntl(other.as_raw_fd(), libc::F_SETLK, &lock) };
      result == 0
    };
    assert!(exclusive_possible(), "POSIX locks of one process never conflict");
    let guard = ForeignSqliteGuard::acquire(&path);
    assert_eq!(guard._held.len(), 2);
    assert!(!exclusive_possible());
    drop(guard);
    assert!(exclusive_possible());
  }
}

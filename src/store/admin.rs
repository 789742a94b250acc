//! What the operator's tools need of a local store beyond the pixstore API:
//! walking records, consistent reads of the stored bytes, checks, and the
//! audit of what records alone do not show (orphan image files, temporary
//! files and unfinished writes of dead writers).

use std::fs;
use std::io::{ErrorKind, Read};
use std::path::Path;
use std::time::Duration;

use super::files::{self, owner_is_dead, owner_of};
use super::{db, Listed, Store, StoredRecord, TEMP_DIR_NAME};
use crate::backend::{ImageCheck, Peek, Problem, ProblemKind};
use crate::crypto::{belongs_to, ImageMeta, Sealed};
use crate::error::{Error, Result};
use crate::id::{self, IMAGE_EXTENSION};
use crate::wire::{WireState, UPDATED_HEADER_LENGTH};

/// How old an image file without a record must be before it counts as an
/// orphan: younger, it may be a write in flight (pixstore writes the file
/// before the record).
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(60);

fn problem(kind: ProblemKind, id: Option<String>, path: Option<&Path>) -> Problem {
  Problem {
    kind,
    id,
    path: path.map(|path| path.display().to_string()),
    repaired: false,
  }
}

impl Store {
  /// The number of records.
  pub fn count(&self) -> Result<u64> {
    self.with_reader(|conn| {
      Ok(conn.query_row("SELECT count(*) FROM image_records", [], |row| row.get::<_, i64>(0))? as u64)
    })
  }

  /// Records in id order after `after`, at most `limit`.
  pub fn records_after(&self, after: &str, limit: usize) -> Result<Vec<Listed>> {
    self.with_reader(|conn| {
      let mut statement =
        conn.prepare_cached("SELECT id, token, meta FROM image_records WHERE id > ?1 ORDER BY id LIMIT ?2")?;
      let rows = statement.query_map(rusqlite::params![after, limit as i64], |row| {
        Ok((
          row.get::<_, String>(0)?,
          row.get::<_, i64>(1)?,
          row.get::<_, String>(2)?,
        ))
      })?;
      rows
        .map(|row| {
          let (id, token, meta) = row?;
          Ok(StoredRecord::listed(&self.ctx.keyring, id, token, &meta))
        })
        .collect()
    })
  }

  /// A consistent (record, ciphertext) pair of a (valid) id, by the reader's
  /// own protocol (blocking).
  pub fn read_image(&self, id: &str) -> Result<Option<(StoredRecord, Vec<u8>)>> {
    let mut payload = self.read_payload(id, None)?;
    if payload.first() == Some(&(WireState::NotFound as u8)) {
      return Ok(None);
    }
    if payload.len() < UPDATED_HEADER_LENGTH || payload[0] != WireState::Updated as u8 {
      return Err(Error::internal(format!("no consistent version of {id} could be read")));
    }
    let token = u64::from_le_bytes(payload[1..9].try_into().expect("8 bytes")) as i64;
    let sealed = Sealed {
      key: payload[9..41].try_into().expect("32 bytes"),
      iv: payload[41..53].try_into().expect("12 bytes"),
      tag: payload[53..69].try_into().expect("16 bytes"),
    };
    payload.drain(..UPDATED_HEADER_LENGTH);
    let record = StoredRecord {
      id: id.to_string(),
      token,
      meta: ImageMeta::from(&sealed),
    };
    Ok(Some((record, payload)))
  }

  /// Whether the image file of `record` is there and authenticates under it
  /// (blocking). A mismatch is confirmed against the record read again, so a
  /// write during the check is not reported.
  pub fn check_image(&self, record: &StoredRecord) -> Result<ImageCheck> {
    let path = id::file_path(&self.ctx.root, &record.id);
    let found = match fs::read(&path) {
      Ok(bytes) if belongs_to(&bytes, &record.meta) => return Ok(ImageCheck::Sound(bytes.len() as u64)),
      Ok(_) => ImageCheck::Corrupt,
      Err(err) if err.kind() == ErrorKind::NotFound => ImageCheck::Missing,
      Err(err) => ImageCheck::Unreadable(format!("the image file cannot be read: {err}")),
    };
    match Store::record(self, &record.id)? {
      Some(current) if current == *record => Ok(found),
      _ => Ok(ImageCheck::Changed),
    }
  }

  /// The size of a record's file and its first byte (blocking).
  pub fn peek_image(&self, record: &StoredRecord) -> Result<Peek> {
    let peeked = (|| {
      let mut file = fs::File::open(id::file_path(&self.ctx.root, &record.id))?;
      let size = file.metadata()?.len();
      let mut first = [0u8; 1];
      if size > 0 {
        file.read_exact(&mut first)?;
      }
      Ok::<_, std::io::Error>((size, first[0]))
    })();
    Ok(match peeked {
      Ok((size, first)) => Peek::Found(size, first),
      Err(err) if err.kind() == ErrorKind::NotFound => Peek::Missing,
      Err(err) => Peek::Unreadable(format!("the image file cannot be read: {err}")),
    })
  }

  /// Rewraps the stored key of `id` (see [`crate::backend::Backend::rekey_record`])
  /// with a compare-and-set on the stored meta, so a write meanwhile (whose
  /// key is wrapped under the first master key already) is left alone.
  /// Deleted content is overwritten (`secure_delete`), so the plain keys do
  /// not stay in free pages of the database file.
  pub fn rekey_record(&self, id: &str, unwrap: bool) -> Result<bool> {
    if let Err(reason) = &self.writer {
      return Err(Error::internal(format!("The Pixstore store is read-only: {reason}")));
    }
    self.with_reader(|conn| {
      let Some((_, stored_json)) = db::record(conn, id)? else {
        return Ok(false);
      };
      let Some(wanted) = self.ctx.keyring.rekeyed(id, &stored_json, unwrap)? else {
        return Ok(false);
      };
      conn.pragma_update(None, "secure_delete", true)?;
      let changed = conn.execute(
        "UPDATE image_records SET meta = ?1 WHERE id = ?2 AND meta = ?3",
        rusqlite::params![wanted, id, stored_json],
      )?;
      Ok(changed > 0)
    })
  }

  /// Writes every page of the WAL into the database file and empties the WAL
  /// (after a rekey: no old copy of a record stays in the WAL).
  pub fn checkpoint(&self) -> Result<()> {
    self.with_reader(|conn| {
      conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
      Ok(())
    })
  }

  /// Unfinished writes and temporary files of dead writers, and image files
  /// no record names (blocking). With `repair`, unfinished writes are settled
  /// by recovery (which also removes the dead writers' temporary files) and
  /// orphan files are removed; records are never touched.
  pub fn audit(&self, repair: bool) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    let temp_dir = self.ctx.temp_dir.clone();
    let intents = self.with_reader(db::intents)?;
    let mut unfinished: Vec<Problem> = intents
      .into_iter()
      .filter(|intent| intent.owner != self.ctx.owner && owner_is_dead(&temp_dir, &intent.owner))
      .map(|intent| problem(ProblemKind::UnfinishedWrite, Some(intent.id), None))
      .collect();
    let mut temps = Vec::new();
    if let Ok(entries) = fs::read_dir(&temp_dir) {
      for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let dead = match name.strip_prefix('.') {
          Some(_) => entry.metadata()?.modified()?.elapsed().unwrap_or_default() > ORPHAN_MIN_AGE,
          None => owner_of(name).is_some_and(|owner| owner != self.ctx.owner && owner_is_dead(&temp_dir, owner)),
        };
        if dead {
          temps.push(problem(ProblemKind::TempFile, None, Some(&entry.path())));
        }
      }
    }
    if repair && !(unfinished.is_empty() && temps.is_empty()) {
      self.recover_now()?;
      for found in unfinished.iter_mut().chain(temps.iter_mut()) {
        found.repaired = true;
      }
    }
    problems.append(&mut unfinished);
    problems.append(&mut temps);
    self.find_orphans(&self.ctx.root, None, repair, &mut problems)?;
    Ok(problems)
  }

  /// Image files under `dir` (the root, or a prefix folder) without a record.
  fn find_orphans(&self, dir: &Path, prefix: Option<&str>, repair: bool, problems: &mut Vec<Problem>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
      Ok(entries) => entries,
      Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
      Err(err) => return Err(err.into()),
    };
    for entry in entries {
      let entry = entry?;
      let name = entry.file_name();
      let Some(name) = name.to_str() else { continue };
      let kind = entry.file_type()?;
      if kind.is_dir() {
        if prefix.is_none() && name != TEMP_DIR_NAME {
          self.find_orphans(&entry.path(), Some(name), repair, problems)?;
        }
        continue;
      }
      let Some(key) = name.strip_suffix(IMAGE_EXTENSION) else {
        continue;
      };
      let id = match prefix {
        Some(prefix) => format!("{prefix}:{key}"),
        None => key.to_string(),
      };
      if !id::is_valid(&id) || id::file_path(&self.ctx.root, &id) != entry.path() {
        continue;
      }
      let recorded = self.with_reader(|conn| db::id_taken(conn, &id))?;
      let old = entry.metadata()?.modified()?.elapsed().unwrap_or_default() > ORPHAN_MIN_AGE;
      if !recorded && old {
        let mut found = problem(ProblemKind::OrphanFile, Some(id), Some(&entry.path()));
        if repair {
          files::remove_if_exists(&entry.path())?;
          found.repaired = true;
        }
        problems.push(found);
      }
    }
    Ok(())
  }
}

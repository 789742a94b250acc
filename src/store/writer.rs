//! The single writer of a store instance: a thread that takes every queued
//! write and delete as one batch (group commit) and runs it in two
//! transactions. The first logs an intent per job; the second, holding
//! SQLite's write lock (which also serializes writers of other processes),
//! puts each temporary file in place (exchanging it with the previous file)
//! or moves a deleted file aside, updates the records and drops the intents.
//!
//! If the second commit fails (a full disk, an I/O error), every file move is
//! undone before the callers hear of the failure, so a failed write or
//! delete leaves the image as it was; the intents are settled by recovery,
//! which the writer retries every [`RECOVERY_RETRY`] until it succeeds. A
//! crash between the two transactions leaves intents that recovery settles.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::files::{self, now_ms, Placed};
use super::recovery::{next_token, recover};
use super::{db, StoredRecord, WriterContext};
use crate::crypto::ImageMeta;
use crate::error::{Error, Result};
use crate::id;

/// Largest number of jobs committed together.
const MAX_BATCH: usize = 512;

/// How often a recovery that failed (e.g. on a full disk) is tried again
/// while no job comes in.
pub const RECOVERY_RETRY: Duration = Duration::from_secs(1);

/// Where a write goes.
#[derive(Debug)]
pub enum WriteTarget {
  /// A new image, optionally under an id prefix.
  New {
    /// The cleaned `dir` of `saveImage` (see [`id::prefix_for`]).
    prefix: Option<String>,
  },
  /// An existing image, which must still exist when the write commits.
  Existing {
    /// The image id.
    id: String,
  },
  /// A given id (an import or a migration): written only when the store has
  /// no record of it (`token: None`, the token is then now) or an older one
  /// than `token`; otherwise skipped.
  Given {
    /// The image id.
    id: String,
    /// The token to keep (a migration), or `None` for a new record.
    token: Option<i64>,
  },
}

/// A queued write: the encrypted image is already in its temporary file.
#[derive(Debug)]
pub struct WriteJob {
  /// Where the image goes.
  pub target: WriteTarget,
  /// File name in the temporary folder.
  pub temp_name: String,
  /// Key, IV and tag of the encrypted file.
  pub meta: ImageMeta,
  /// Receives the committed record, or `None` for a skipped [`WriteTarget::Given`] write.
  pub reply: oneshot::Sender<Result<Option<StoredRecord>>>,
}

/// Work for the writer thread.
#[derive(Debug)]
pub enum Job {
  /// Commit an encrypted image.
  Write(WriteJob),
  /// Delete an image; replies whether a file or a record was removed.
  Delete {
    /// The image id.
    id: String,
    /// Receives the outcome.
    reply: oneshot::Sender<Result<bool>>,
  },
  /// Settle intents of dead store instances now.
  Recover {
    /// Receives the outcome.
    reply: oneshot::Sender<Result<()>>,
  },
}

/// Runs the writer until every sender of `jobs` is gone: each batch is every
/// job queued at that moment. `recovery_owed` is true when the recovery at
/// open failed; it is retried before the next batch and every
/// [`RECOVERY_RETRY`] until it succeeds.
pub fn run(mut conn: Connection, ctx: WriterContext, jobs: Receiver<Job>, mut recovery_owed: bool) {
  loop {
    let first = if recovery_owed {
      match jobs.recv_timeout(RECOVERY_RETRY) {
        Ok(job) => Some(job),
        Err(RecvTimeoutError::Timeout) => None,
        Err(RecvTimeoutError::Disconnected) => break,
      }
    } else {
      match jobs.recv() {
        Ok(job) => Some(job),
        Err(_) => break,
      }
    };
    if recovery_owed {
      recovery_owed = recover(&mut conn, &ctx).is_err();
    }
    let Some(first) = first else { continue };
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
      match jobs.try_recv() {
        Ok(job) => batch.push(job),
        Err(_) => break,
      }
    }
    ctx.queued.fetch_sub(batch.len(), std::sync::atomic::Ordering::Relaxed);
    recovery_owed |= run_batch(&mut conn, &ctx, batch);
  }
  if recovery_owed {
    let _ = recover(&mut conn, &ctx);
  }
}

/// A job whose intent is logged.
enum Logged {
  Write {
    id: String,
    seq: i64,
    /// The meta as stored (the key wrapped under the master key, if any).
    meta_json: String,
    job: WriteJob,
  },
  Delete {
    id: String,
    seq: i64,
    aside: String,
    reply: oneshot::Sender<Result<bool>>,
  },
}

/// A finished job and its reply, sent only once the batch has committed.
enum Outcome {
  Write(
    oneshot::Sender<Result<Option<StoredRecord>>>,
    Result<Option<StoredRecord>>,
  ),
  Delete(oneshot::Sender<Result<bool>>, Result<bool>),
}

impl Outcome {
  fn send(self) {
    match self {
      Outcome::Write(reply, result) => drop(reply.send(result)),
      Outcome::Delete(reply, result) => drop(reply.send(result)),
    }
  }

  fn fail(self, err: Error) {
    match self {
      Outcome::Write(reply, _) => drop(reply.send(Err(err))),
      Outcome::Delete(reply, _) => drop(reply.send(Err(err))),
    }
  }
}

/// A file moved inside the second transaction: undone if it fails to commit.
struct Moved {
  from: PathBuf,
  to: PathBuf,
  placed: Placed,
  /// What the commit makes unneeded: a previous image swapped out, or a deleted one moved aside.
  obsolete: Option<PathBuf>,
}

/// Runs one batch; returns true when a failed commit left intents that
/// recovery could not settle yet.
fn run_batch(conn: &mut Connection, ctx: &WriterContext, batch: Vec<Job>) -> bool {
  let mut recoveries = Vec::new();
  let mut work = Vec::with_capacity(batch.len());
  for job in batch {
    match job {
      Job::Recover { reply } => recoveries.push(reply),
      other => work.push(other),
    }
  }
  let mut recovery_owed = false;
  if !work.is_empty() {
    if let Some(logged) = log_intents(conn, ctx, work) {
      recovery_owed = apply(conn, ctx, logged);
    }
  }
  if !recoveries.is_empty() {
    let result = recover(conn, ctx);
    recovery_owed = result.is_err();
    recoveries
      .into_iter()
      .for_each(|reply| drop(reply.send(result.clone())));
  }
  recovery_owed
}

fn remove_temp(ctx: &WriterContext, temp_name: &str) {
  let _ = files::remove_if_exists(&ctx.temp_dir.join(temp_name));
}

/// First transaction: logs an intent per job (choosing ids for new images).
/// On failure every job is answered with the error and nothing is logged.
fn log_intents(conn: &mut Connection, ctx: &WriterContext, jobs: Vec<Job>) -> Option<Vec<Logged>> {
  let mut logged = Vec::with_capacity(jobs.len());
  let mut refused = Vec::new();
  let mut queue = jobs.into_iter();
  let result = (|| -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut new_ids = HashSet::new();
    let now = now_ms();
    for job in queue.by_ref() {
      match job {
        Job::Write(job) => {
          let id = match &job.target {
            WriteTarget::New { prefix } => loop {
              let id = id::generate(prefix.as_deref(), now)?;
              if !new_ids.contains(&id) && !db::id_taken(&tx, &id)? {
                new_ids.insert(id.clone());
                break id;
              }
            },
            WriteTarget::Existing { id } => {
              if db::record_token(&tx, id)?.is_none() {
                remove_temp(ctx, &job.temp_name);
                refused.push(Outcome::Write(job.reply, Err(Error::not_found(id))));
                continue;
              }
              id.clone()
            }
            WriteTarget::Given { id, token } => {
              if !given_wanted(db::record_token(&tx, id)?, *token) || new_ids.contains(id) {
                remove_temp(ctx, &job.temp_name);
                refused.push(Outcome::Write(job.reply, Ok(None)));
                continue;
              }
              new_ids.insert(id.clone());
              id.clone()
            }
          };
          let meta_json = serde_json::to_string(&ctx.keyring.wrap(&id, &job.meta)?)?;
          let seq = db::insert_intent(&tx, &id, &ctx.owner, &job.temp_name, Some(&meta_json))?;
          logged.push(Logged::Write {
            id,
            seq,
            meta_json,
            job,
          });
        }
        Job::Delete { id, reply } => {
          let aside = ctx.temp_name();
          let seq = db::insert_intent(&tx, &id, &ctx.owner, &aside, None)?;
          logged.push(Logged::Delete { id, seq, aside, reply });
        }
        Job::Recover { .. } => unreachable!("recoveries are split off before"),
      }
    }
    tx.commit()?;
    Ok(())
  })();
  refused.into_iter().for_each(Outcome::send);
  match result {
    Ok(()) => Some(logged),
    Err(err) => {
      // The job being handled when the error struck was dropped with its reply,
      // which its caller sees as a closed channel (an internal error).
      let unlogged = logged.into_iter().map(|entry| match entry {
        Logged::Write { job, .. } => Job::Write(job),
        Logged::Delete { id, reply, .. } => Job::Delete { id, reply },
      });
      for job in unlogged.chain(queue) {
        match job {
          Job::Write(job) => {
            remove_temp(ctx, &job.temp_name);
            drop(job.reply.send(Err(err.clone())));
          }
          Job::Delete { reply, .. } => drop(reply.send(Err(err.clone()))),
          Job::Recover { reply } => drop(reply.send(Err(err.clone()))),
        }
      }
      None
    }
  }
}

/// Second transaction: puts files in place (or aside, for deletes) and
/// commits the records. A file error fails its own job; a database error
/// fails the batch, and then every move is undone. Returns true when the
/// batch's intents could not be settled yet (recovery is owed).
fn apply(conn: &mut Connection, ctx: &WriterContext, logged: Vec<Logged>) -> bool {
  let mut outcomes = Vec::with_capacity(logged.len());
  let mut moves: Vec<Moved> = Vec::new();
  let mut touched_dirs: Vec<PathBuf> = Vec::new();
  let result = (|| -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    for entry in logged {
      match entry {
        Logged::Write {
          id,
          seq,
          meta_json,
          job,
        } => {
          let path = id::file_path(&ctx.root, &id);
          let temp = ctx.temp_dir.join(&job.temp_name);
          let previous = db::record_token(&tx, &id)?;
          let placed = match &job.target {
            WriteTarget::Existing { .. } if previous.is_none() => Err(Error::not_found(&id)),
            WriteTarget::Given { token, .. } if !given_wanted(previous, *token) => Ok(None),
            _ => put_in_place(&temp, &path, &mut touched_dirs).map(Some),
          };
          let result = match placed {
            Ok(None) => {
              remove_temp(ctx, &job.temp_name);
              Ok(None)
            }
            Ok(Some(placed)) => {
              let obsolete = (placed == Placed::Exchanged).then(|| temp.clone());
              moves.push(Moved {
                from: temp,
                to: path,
                placed,
                obsolete,
              });
              let token = match &job.target {
                WriteTarget::Given { token: Some(token), .. } => *token,
                _ => next_token(previous, now),
              };
              db::upsert_record(&tx, &id, token, &meta_json)?;
              Ok(Some(StoredRecord {
                id,
                token,
                meta: job.meta,
              }))
            }
            Err(err) => {
              remove_temp(ctx, &job.temp_name);
              Err(err)
            }
          };
          db::delete_intent(&tx, seq)?;
          outcomes.push(Outcome::Write(job.reply, result));
        }
        Logged::Delete { id, seq, aside, reply } => {
          let path = id::file_path(&ctx.root, &id);
          let aside = ctx.temp_dir.join(aside);
          let file_moved = match std::fs::rename(&path, &aside) {
            Ok(()) => {
              moves.push(Moved {
                from: path.clone(),
                to: aside.clone(),
                placed: Placed::Renamed,
                obsolete: Some(aside),
              });
              Ok(true)
            }
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err.into()),
          };
          let record_removed = db::delete_record(&tx, &id)?;
          if let Some(dir) = path.parent() {
            touched_dirs.push(dir.to_owned());
          }
          db::delete_intent(&tx, seq)?;
          outcomes.push(Outcome::Delete(
            reply,
            file_moved.map(|file_moved| file_moved || record_removed),
          ));
        }
      }
    }
    if ctx.sync {
      touched_dirs.sort();
      touched_dirs.dedup();
      for dir in &touched_dirs {
        files::sync_dir(dir)?;
      }
      files::sync_dir(&ctx.temp_dir)?;
    }
    tx.commit()?;
    Ok(())
  })();
  match result {
    Ok(()) => {
      outcomes.into_iter().for_each(Outcome::send);
      for obsolete in moves.into_iter().filter_map(|moved| moved.obsolete) {
        let _ = files::remove_if_exists(&obsolete);
      }
      false
    }
    Err(err) => {
      // Undo in reverse order, so every path gets back the file it had.
      for moved in moves.iter().rev() {
        let _ = files::unplace(&moved.from, &moved.to, moved.placed);
      }
      let err = Error::internal(format!("the write was not committed: {err}"));
      outcomes.into_iter().for_each(|outcome| outcome.fail(err.clone()));
      recover(conn, ctx).is_err()
    }
  }
}

/// Whether a [`WriteTarget::Given`] write with `token` goes ahead over a
/// record whose token is `existing`: always into an empty slot; over a record
/// only with an explicit, newer token (a migration resuming never goes back).
fn given_wanted(existing: Option<i64>, token: Option<i64>) -> bool {
  match (existing, token) {
    (None, _) => true,
    (Some(existing), Some(token)) => token > existing,
    (Some(_), None) => false,
  }
}

/// Puts a temporary file at its image path (see [`files::place`]), creating
/// the prefix folder.
fn put_in_place(temp: &Path, path: &Path, touched_dirs: &mut Vec<PathBuf>) -> Result<Placed> {
  let dir = path.parent().expect("image paths have a parent");
  if !touched_dirs.iter().any(|known| known == dir) {
    std::fs::create_dir_all(dir)?;
    touched_dirs.push(dir.to_owned());
  }
  Ok(files::place(temp, path)?)
}

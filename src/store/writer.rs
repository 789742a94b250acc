//! The single writer of a store instance: a thread that takes every queued
//! write and delete as one batch (group commit) and runs it in two
//! transactions. The first logs an intent per job; the second, holding
//! SQLite's write lock (which also serializes writers of other processes),
//! renames each temporary file into place or removes the file, updates the
//! records and drops the intents. A crash between the two leaves intents that
//! recovery settles.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::files::{self, now_ms};
use super::recovery::{next_token, recover};
use super::{db, StoredRecord, WriterContext};
use crate::crypto::ImageMeta;
use crate::error::{Error, Result};
use crate::id;

/// Largest number of jobs committed together.
const MAX_BATCH: usize = 512;

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
  /// Receives the committed record.
  pub reply: oneshot::Sender<Result<StoredRecord>>,
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
/// job queued at that moment.
pub fn run(mut conn: Connection, ctx: WriterContext, jobs: Receiver<Job>) {
  while let Ok(first) = jobs.recv() {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
      match jobs.try_recv() {
        Ok(job) => batch.push(job),
        Err(_) => break,
      }
    }
    run_batch(&mut conn, &ctx, batch);
  }
}

/// A job whose intent is logged.
enum Logged {
  Write {
    id: String,
    seq: i64,
    job: WriteJob,
  },
  Delete {
    id: String,
    seq: i64,
    reply: oneshot::Sender<Result<bool>>,
  },
}

/// A finished job and its reply, sent only once the batch has committed.
enum Outcome {
  Write(oneshot::Sender<Result<StoredRecord>>, Result<StoredRecord>),
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

fn run_batch(conn: &mut Connection, ctx: &WriterContext, batch: Vec<Job>) {
  let mut recoveries = Vec::new();
  let mut work = Vec::with_capacity(batch.len());
  for job in batch {
    match job {
      Job::Recover { reply } => recoveries.push(reply),
      other => work.push(other),
    }
  }
  if !work.is_empty() {
    if let Some(logged) = log_intents(conn, ctx, work) {
      apply(conn, ctx, logged);
    }
  }
  if !recoveries.is_empty() {
    let result = recover(conn, ctx, false);
    recoveries
      .into_iter()
      .for_each(|reply| drop(reply.send(result.clone())));
  }
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
          };
          let meta_json = serde_json::to_string(&job.meta)?;
          let seq = db::insert_intent(&tx, &id, &ctx.owner, Some(&job.temp_name), Some(&meta_json))?;
          logged.push(Logged::Write { id, seq, job });
        }
        Job::Delete { id, reply } => {
          let seq = db::insert_intent(&tx, &id, &ctx.owner, None, None)?;
          logged.push(Logged::Delete { id, seq, reply });
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

/// Second transaction: puts files in place and commits the records. File
/// errors fail their own job; a database error fails the batch, and then this
/// instance's intents are settled by recovery so no file and record disagree.
fn apply(conn: &mut Connection, ctx: &WriterContext, logged: Vec<Logged>) {
  let mut outcomes = Vec::with_capacity(logged.len());
  let mut touched_dirs: Vec<PathBuf> = Vec::new();
  let result = (|| -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    for entry in logged {
      match entry {
        Logged::Write { id, seq, job } => {
          let path = id::file_path(&ctx.root, &id);
          let previous = db::record_token(&tx, &id)?;
          let placed = if matches!(job.target, WriteTarget::Existing { .. }) && previous.is_none() {
            Err(Error::not_found(&id))
          } else {
            put_in_place(ctx, &job.temp_name, &path, &mut touched_dirs)
          };
          let result = match placed {
            Ok(()) => {
              let token = next_token(previous, now);
              db::upsert_record(&tx, &id, token, &serde_json::to_string(&job.meta)?)?;
              Ok(StoredRecord {
                id,
                token,
                meta: job.meta,
              })
            }
            Err(err) => {
              remove_temp(ctx, &job.temp_name);
              Err(err)
            }
          };
          db::delete_intent(&tx, seq)?;
          outcomes.push(Outcome::Write(job.reply, result));
        }
        Logged::Delete { id, seq, reply } => {
          let path = id::file_path(&ctx.root, &id);
          let result = files::remove_if_exists(&path);
          let record_removed = db::delete_record(&tx, &id)?;
          if let Some(dir) = path.parent() {
            touched_dirs.push(dir.to_owned());
          }
          db::delete_intent(&tx, seq)?;
          outcomes.push(Outcome::Delete(
            reply,
            result.map(|file_removed| file_removed || record_removed),
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
    Ok(()) => outcomes.into_iter().for_each(Outcome::send),
    Err(err) => {
      let err = Error::internal(format!("the write was not committed: {err}"));
      outcomes.into_iter().for_each(|outcome| outcome.fail(err.clone()));
      let _ = recover(conn, ctx, true);
    }
  }
}

/// Renames a temporary file to its final path, creating the prefix folder.
fn put_in_place(
  ctx: &WriterContext,
  temp_name: &str,
  path: &std::path::Path,
  touched_dirs: &mut Vec<PathBuf>,
) -> Result<()> {
  let dir = path.parent().expect("image paths have a parent");
  if !touched_dirs.iter().any(|known| known == dir) {
    std::fs::create_dir_all(dir)?;
    touched_dirs.push(dir.to_owned());
  }
  std::fs::rename(ctx.temp_dir.join(temp_name), path)?;
  Ok(())
}

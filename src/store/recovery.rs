//! Finishing what interrupted writes left behind. An intent is settled when
//! its owner is dead (another instance that crashed) or is this instance
//! itself (a commit that failed): recovery runs on the writer thread between
//! batches, when none of its own writes is in flight.
//!
//! A write reached its path if the file there is the one it encrypted (its
//! GCM tag verifies under the intent's key): it is then committed, and its
//! temporary name, which holds the previous file after an exchange, is
//! removed. Otherwise the write never happened and its temporary file goes.
//! A delete is rolled back: a file it had moved aside goes back to its path
//! and the record stays (the delete was never acknowledged, and recovery
//! never removes a record an image could still be served from); only a
//! delete logged by pixstore-native 0.1, which removed files in place, is
//! finished when its file is gone. Then the dead owners' files go.

use rusqlite::{Connection, TransactionBehavior};

use super::db::{self, Intent};
use super::files::{self, now_ms};
use super::WriterContext;
use crate::crypto::{belongs_to, ImageMeta};
use crate::error::Result;
use crate::id;

/// The token of a new write: `Date.now()`, but always above the previous token.
pub fn next_token(previous: Option<i64>, now_ms: u64) -> i64 {
  let now = now_ms as i64;
  previous.map_or(now, |previous| now.max(previous + 1))
}

/// Settles the intents of dead owners and this instance's own leftovers, then
/// removes dead owners' files. Fails (changing nothing) when the database
/// cannot be written, e.g. on a full disk; the writer retries later.
pub fn recover(conn: &mut Connection, ctx: &WriterContext) -> Result<()> {
  let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
  let mut settled = Vec::new();
  for intent in db::intents(&tx)? {
    if intent.owner != ctx.owner && !files::owner_is_dead(&ctx.temp_dir, &intent.owner) {
      continue;
    }
    if id::is_valid(&intent.id) {
      settle(&tx, ctx, &intent)?;
    }
    db::delete_intent(&tx, intent.seq)?;
    settled.extend(intent.temp_name);
  }
  tx.commit()?;
  // Only now are the temporary files of settled intents never needed again.
  for temp_name in settled {
    files::remove_if_exists(&ctx.temp_dir.join(temp_name))?;
  }
  files::remove_dead_owners_files(&ctx.temp_dir, &ctx.owner)
}

/// Commits a write that reached its path, or finishes a delete whose file left it.
fn settle(conn: &Connection, ctx: &WriterContext, intent: &Intent) -> Result<()> {
  let path = id::file_path(&ctx.root, &intent.id);
  match &intent.meta {
    Some(meta_json) => {
      let meta = ctx
        .keyring
        .unwrap(&intent.id, &serde_json::from_str::<ImageMeta>(meta_json)?)?;
      let placed = files::read_if_exists(&path)?.is_some_and(|file| belongs_to(&file, &meta));
      if placed {
        let token = next_token(db::record_token(conn, &intent.id)?, now_ms());
        db::upsert_record(conn, &intent.id, token, meta_json)?;
      }
    }
    None => match &intent.temp_name {
      Some(aside) => {
        let aside = ctx.temp_dir.join(aside);
        if aside.exists() && !path.exists() {
          std::fs::rename(&aside, &path)?;
        }
      }
      None => {
        if !path.exists() {
          db::delete_record(conn, &intent.id)?;
        }
      }
    },
  }
  Ok(())
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn tokens_strictly_increase_even_within_one_millisecond() {
    assert_eq!(next_token(None, 1000), 1000);
    assert_eq!(next_token(Some(400), 1000), 1000);
    assert_eq!(next_token(Some(1000), 1000), 1001);
    assert_eq!(next_token(Some(5000), 1000), 5001);
  }
}

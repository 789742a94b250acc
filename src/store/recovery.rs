//! Finishing what crashed store instances left behind: every intent of a dead
//! owner is settled (a write whose file was renamed into place is committed if
//! the file's GCM tag proves it belongs to that write, otherwise dropped; a
//! delete whose file is already gone is finished, else dropped), then the dead
//! owners' temporary files are removed.

use rusqlite::{Connection, TransactionBehavior};

use super::db;
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

/// Settles the intents of dead owners (and, with `include_own`, this
/// instance's own, after a failed commit), then removes dead owners' files.
pub fn recover(conn: &mut Connection, ctx: &WriterContext, include_own: bool) -> Result<()> {
  let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
  for intent in db::intents(&tx)? {
    let settle = if intent.owner == ctx.owner {
      include_own
    } else {
      files::owner_is_dead(&ctx.temp_dir, &intent.owner)
    };
    if !settle {
      continue;
    }
    if id::is_valid(&intent.id) {
      let path = id::file_path(&ctx.root, &intent.id);
      match (&intent.temp_name, &intent.meta) {
        (Some(temp_name), Some(meta_json)) => {
          // The temporary file is still there: the rename never happened.
          if !files::remove_if_exists(&ctx.temp_dir.join(temp_name))? {
            let meta: ImageMeta = serde_json::from_str(meta_json)?;
            let renamed = files::read_if_exists(&path)?.is_some_and(|file| belongs_to(&file, &meta));
            if renamed {
              let token = next_token(db::record_token(&tx, &intent.id)?, now_ms());
              db::upsert_record(&tx, &intent.id, token, meta_json)?;
            }
          }
        }
        // A delete: if the file is still there nothing happened yet and the
        // image stays; if it is gone, the delete is finished.
        _ => {
          if !path.exists() {
            db::delete_record(&tx, &intent.id)?;
          }
        }
      }
    }
    db::delete_intent(&tx, intent.seq)?;
  }
  tx.commit()?;
  files::remove_dead_owners_files(&ctx.temp_dir, &ctx.owner)
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

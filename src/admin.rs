//! The operator's tools (the `pixstore-native` command and
//! `pixstore-native/admin`): verify (and repair), stats, import, export and
//! migrate, on any store through its [`Backend`]. Every operation streams
//! through the records page by page (memory stays bounded however large the
//! store), works on several images at once, reports progress, stops cleanly
//! when cancelled, and returns the report SPEC "Operating the store" defines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::backend::{Backend, ImageCheck, Peek, Problem, ProblemKind};
use crate::crypto::{open, peek_first_byte};
use crate::error::{Error, Result};
use crate::id;
use crate::store::{blocking, ImageRules, Listed, PlainImage, Unreadable};

/// Records read at once when walking a store.
const PAGE: usize = 256;
/// How often progress is reported, at most.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// How far an operation is.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
  /// What it is doing (`records`, `files`, `audit`).
  pub phase: &'static str,
  /// Items done.
  pub done: u64,
  /// Items in all, when known.
  pub total: Option<u64>,
}

/// Progress reporting and cancellation of one operation.
#[derive(Clone)]
pub struct Control {
  cancelled: Arc<AtomicBool>,
  report: Arc<dyn Fn(Progress) + Send + Sync>,
  last: Arc<Mutex<Option<Instant>>>,
}

impl Control {
  /// Reports progress through `report`; stops when `cancelled` is set.
  pub fn new(cancelled: Arc<AtomicBool>, report: impl Fn(Progress) + Send + Sync + 'static) -> Control {
    Control {
      cancelled,
      report: Arc::new(report),
      last: Arc::new(Mutex::new(None)),
    }
  }

  /// A control that reports nothing and is never cancelled (tests).
  pub fn quiet() -> Control {
    Control::new(Arc::new(AtomicBool::new(false)), |_| {})
  }

  fn cancelled(&self) -> bool {
    self.cancelled.load(Ordering::Relaxed)
  }

  /// Reports at most every [`PROGRESS_INTERVAL`], and always when `done == total`.
  fn progress(&self, phase: &'static str, done: u64, total: Option<u64>) {
    let mut last = self.last.lock().expect("progress lock");
    let due = last.is_none_or(|at| at.elapsed() >= PROGRESS_INTERVAL) || Some(done) == total;
    if due {
      *last = Some(Instant::now());
      (self.report)(Progress { phase, done, total });
    }
  }
}

/// How many images are handled at once: enough to overlap reads, decryption
/// and network round trips on every core.
fn parallelism() -> usize {
  std::thread::available_parallelism().map_or(4, |cores| cores.get() * 4)
}

/// The id of a listed record, readable or not.
fn listed_id(listed: &Listed) -> &str {
  match listed {
    Ok(record) => &record.id,
    Err(unreadable) => &unreadable.id,
  }
}

/// The report an operation filled from its tasks, once they are all done.
fn into_report<T>(shared: Arc<Mutex<T>>, operation: &str) -> Result<T> {
  Arc::try_unwrap(shared)
    .map_err(|_| Error::internal(format!("{operation} report still shared")))
    .map(|report| report.into_inner().expect("report lock"))
}

/// Walks every record page by page, running `visit` on up to `parallelism`
/// records at once (a record whose meta cannot be read is visited too, as
/// [`Unreadable`](crate::store::Unreadable)); stops early when cancelled.
/// Returns whether it was.
async fn each_record<F, Fut>(
  backend: &Arc<dyn Backend>,
  control: &Control,
  phase: &'static str,
  visit: F,
) -> Result<bool>
where
  F: Fn(Listed) -> Fut,
  Fut: std::future::Future<Output = Result<()>>,
{
  let total = Arc::clone(backend).count().await?;
  let mut done = 0u64;
  let mut after = String::new();
  control.progress(phase, 0, Some(total));
  loop {
    if control.cancelled() {
      return Ok(true);
    }
    let page = Arc::clone(backend).records_after(after.clone(), PAGE).await?;
    let Some(last) = page.last() else { break };
    after = listed_id(last).to_string();
    let count = page.len();
    // Records not started when a cancellation arrives are left for another run.
    let started = std::sync::atomic::AtomicU64::new(0);
    let results: Vec<Result<()>> = stream::iter(page.into_iter().map(|record| {
      let go = !control.cancelled();
      if go {
        started.fetch_add(1, Ordering::Relaxed);
      }
      let visited = go.then(|| visit(record));
      async move {
        match visited {
          Some(visited) => visited.await,
          None => Ok(()),
        }
      }
    }))
    .buffer_unordered(parallelism())
    .collect()
    .await;
    results.into_iter().collect::<Result<()>>()?;
    done += started.load(Ordering::Relaxed);
    control.progress(phase, done, Some(total.max(done)));
    if count < PAGE {
      break;
    }
  }
  Ok(control.cancelled())
}

/// The report of `verify`.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
  /// Records checked.
  pub records: u64,
  /// Image files (or objects) found for them.
  pub files: u64,
  /// What is wrong.
  pub problems: Vec<ProblemReport>,
  /// Whether it stopped before the end (Ctrl-C).
  pub interrupted: bool,
}

/// The problem kind of a record whose meta cannot be read (not JSON, or its
/// key wrapped under a master key not in `masterKeys`): its image cannot be
/// checked. Not one of SPEC's five kinds, which all assume a readable record.
const UNREADABLE_RECORD: &str = "unreadable-record";

/// A problem as reported.
#[derive(Debug, Serialize)]
pub struct ProblemReport {
  /// `missing-file`, `corrupt-file`, `orphan-file`, `temp-file`,
  /// `unfinished-write` or `unreadable-record`.
  pub kind: &'static str,
  /// The image id.
  #[serde(skip_serializing_if = "Option::is_none")]
  pub id: Option<String>,
  /// The file or object key.
  #[serde(skip_serializing_if = "Option::is_none")]
  pub path: Option<String>,
  /// Why the record or its image cannot be read (`unreadable-record`, and
  /// `corrupt-file` for an image file that cannot be read at all).
  #[serde(skip_serializing_if = "Option::is_none")]
  pub reason: Option<String>,
  /// Whether `--repair` fixed it.
  pub repaired: bool,
}

impl From<Problem> for ProblemReport {
  fn from(problem: Problem) -> Self {
    ProblemReport {
      kind: problem.kind.name(),
      id: problem.id,
      path: problem.path,
      reason: None,
      repaired: problem.repaired,
    }
  }
}

/// Every record has its image and the image authenticates under the
/// record's key; then what records do not show (orphans, temporary files,
/// unfinished writes), repaired when asked.
pub async fn verify(backend: Arc<dyn Backend>, repair: bool, control: &Control) -> Result<VerifyReport> {
  let report = Arc::new(Mutex::new(VerifyReport::default()));
  let interrupted = each_record(&backend, control, "records", |listed| {
    let (backend, report) = (Arc::clone(&backend), Arc::clone(&report));
    async move {
      let record = match listed {
        Ok(record) => record,
        Err(unreadable) => {
          let mut report = report.lock().expect("report lock");
          report.records += 1;
          report.problems.push(ProblemReport {
            kind: UNREADABLE_RECORD,
            id: Some(unreadable.id),
            path: None,
            reason: Some(unreadable.reason),
            repaired: false,
          });
          return Ok(());
        }
      };
      let path = backend.image_path(&record);
      let check = Arc::clone(&backend).check_image(record.clone()).await?;
      let mut report = report.lock().expect("report lock");
      report.records += 1;
      let kind = match check {
        ImageCheck::Sound(_) => {
          report.files += 1;
          return Ok(());
        }
        ImageCheck::Changed => return Ok(()),
        ImageCheck::Missing => ProblemKind::MissingFile,
        ImageCheck::Corrupt => {
          report.files += 1;
          ProblemKind::CorruptFile
        }
        // It cannot be authenticated either: corrupt, with the reason.
        ImageCheck::Unreadable(reason) => {
          report.files += 1;
          report.problems.push(ProblemReport {
            kind: ProblemKind::CorruptFile.name(),
            id: Some(record.id),
            path: Some(path),
            reason: Some(reason),
            repaired: false,
          });
          return Ok(());
        }
      };
      report.problems.push(ProblemReport {
        kind: kind.name(),
        id: Some(record.id),
        path: Some(path),
        reason: None,
        repaired: false,
      });
      Ok(())
    }
  })
  .await?;
  let mut report = into_report(report, "verify")?;
  report.interrupted = interrupted;
  if !interrupted {
    control.progress("audit", 0, None);
    let found = backend.audit(repair).await?;
    report.problems.extend(found.into_iter().map(ProblemReport::from));
  }
  Ok(report)
}

/// The report of `stats`.
#[derive(Debug, Default, Serialize)]
pub struct StatsReport {
  /// Number of images (records).
  pub images: u64,
  /// Bytes of the original images (without encryption overhead).
  pub bytes: u64,
  /// Images per format.
  pub formats: BTreeMap<String, u64>,
  /// Images per id prefix (`''` for ids without one).
  pub prefixes: BTreeMap<String, u64>,
  /// Whether it stopped before the end.
  pub interrupted: bool,
}

/// The format `stats` counts a record under when its meta or its image file
/// cannot be read.
const UNREADABLE_FORMAT: &str = "unreadable";

/// Counts images, their bytes, formats (read from the encrypted format byte
/// alone, see [`peek_first_byte`]; `missing` for a record without its image,
/// `unreadable` for one whose meta cannot be read) and id prefixes.
pub async fn stats(backend: Arc<dyn Backend>, formats: &[String], control: &Control) -> Result<StatsReport> {
  let report = Arc::new(Mutex::new(StatsReport::default()));
  let formats = Arc::new(formats.to_vec());
  let interrupted = each_record(&backend, control, "records", |listed| {
    let (backend, report, formats) = (Arc::clone(&backend), Arc::clone(&report), Arc::clone(&formats));
    async move {
      let (id, peeked) = match listed {
        Ok(record) => (
          record.id.clone(),
          Some((Arc::clone(&backend).peek_image(record.clone()).await?, record)),
        ),
        Err(unreadable) => (unreadable.id, None),
      };
      let (size, format) = match peeked {
        None | Some((Peek::Unreadable(_), _)) => (0, UNREADABLE_FORMAT.into()),
        Some((Peek::Found(size, first), record)) if size > 0 => {
          let byte = peek_first_byte(first, &record.meta)?;
          let format = formats
            .get((byte as usize).wrapping_sub(1))
            .cloned()
            .unwrap_or_else(|| "unknown".into());
          (size - 1, format)
        }
        Some(_) => (0, "missing".into()),
      };
      let prefix = id.split_once(':').map_or("", |(prefix, _)| prefix).to_string();
      let mut report = report.lock().expect("report lock");
      report.images += 1;
      report.bytes += size;
      *report.formats.entry(format).or_default() += 1;
      *report.prefixes.entry(prefix).or_default() += 1;
      Ok(())
    }
  })
  .await?;
  let mut report = into_report(report, "stats")?;
  report.interrupted = interrupted;
  Ok(report)
}

/// One exported image.
#[derive(Debug, Serialize)]
pub struct Exported {
  /// The image id.
  pub id: String,
  /// The file written.
  pub path: String,
}

/// One item that failed, and why.
#[derive(Debug, Serialize)]
pub struct Failed {
  /// The image id.
  pub id: String,
  /// Why.
  pub reason: String,
}

impl From<Unreadable> for Failed {
  fn from(unreadable: Unreadable) -> Failed {
    Failed {
      id: unreadable.id,
      reason: unreadable.reason,
    }
  }
}

/// The report of `export`.
#[derive(Debug, Default, Serialize)]
pub struct ExportReport {
  /// Images written.
  pub exported: Vec<Exported>,
  /// Images that could not be.
  pub failed: Vec<Failed>,
  /// Whether it stopped before the end.
  pub interrupted: bool,
}

/// The file an image is exported to: `<folder>/<prefix>/<key>.<ext>` for
/// `prefix:key`, else `<folder>/<id>.<ext>`.
fn export_path(folder: &Path, id: &str, extension: &str) -> PathBuf {
  match id.split_once(':') {
    Some((prefix, key)) if !prefix.is_empty() => folder.join(prefix).join(format!("{key}.{extension}")),
    Some((_, key)) => folder.join(format!("{key}.{extension}")),
    None => folder.join(format!("{id}.{extension}")),
  }
}

/// Decrypts every image to a file named after its id with its format's extension.
pub async fn export(
  backend: Arc<dyn Backend>,
  folder: &Path,
  formats: &[String],
  control: &Control,
) -> Result<ExportReport> {
  std::fs::create_dir_all(folder)
    .map_err(|err| Error::pixstore(format!("cannot create the folder {}: {err}", folder.display())))?;
  let report = Arc::new(Mutex::new(ExportReport::default()));
  let formats = Arc::new(formats.to_vec());
  let interrupted = each_record(&backend, control, "records", |listed| {
    let (backend, report, formats, folder) = (
      Arc::clone(&backend),
      Arc::clone(&report),
      Arc::clone(&formats),
      folder.to_owned(),
    );
    async move {
      let id = match listed {
        Ok(record) => record.id,
        Err(unreadable) => {
          report.lock().expect("report lock").failed.push(unreadable.into());
          return Ok(());
        }
      };
      let outcome: Result<PathBuf> = async {
        let Some((record, ciphertext)) = Arc::clone(&backend).read_image(id.clone()).await? else {
          return Err(Error::pixstore("the record is gone"));
        };
        blocking(move || {
          let sealed = record.meta.decode()?;
          let plain = open(&ciphertext, &sealed)
            .ok_or_else(|| Error::pixstore("the image does not authenticate under its key"))?;
          let extension = plain
            .first()
            .and_then(|byte| formats.get((*byte as usize).wrapping_sub(1)))
            .ok_or_else(|| Error::pixstore("unknown format byte"))?;
          let path = export_path(&folder, &record.id, extension);
          if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
          }
          std::fs::write(&path, &plain[1..])?;
          Ok(path)
        })
        .await
      }
      .await;
      let mut report = report.lock().expect("report lock");
      match outcome {
        Ok(path) => report.exported.push(Exported {
          id,
          path: path.display().to_string(),
        }),
        Err(err) => report.failed.push(Failed {
          id,
          reason: err.message,
        }),
      }
      Ok(())
    }
  })
  .await?;
  let mut report = into_report(report, "export")?;
  report.interrupted = interrupted;
  Ok(report)
}

/// One imported file.
#[derive(Debug, Serialize)]
pub struct Imported {
  /// The file.
  pub path: String,
  /// The id it got.
  pub id: String,
}

/// One skipped file, and why.
#[derive(Debug, Serialize)]
pub struct Skipped {
  /// The file.
  pub path: String,
  /// Why.
  pub reason: String,
}

/// The report of `import`.
#[derive(Debug, Default, Serialize)]
pub struct ImportReport {
  /// Files stored.
  pub imported: Vec<Imported>,
  /// Files not stored.
  pub skipped: Vec<Skipped>,
  /// Whether it stopped before the end.
  pub interrupted: bool,
}

/// Every regular file under `folder`, recursively, in name order (a symbolic
/// link to a file counts as one), and every entry passed over, with the reason:
/// symbolic links to folders (not followed: they can loop), FIFOs, sockets and
/// devices (reading them could block or never end), folders that cannot be read.
/// An error only when `folder` itself cannot be read.
fn files_under(folder: &Path) -> Result<(Vec<PathBuf>, Vec<Skipped>)> {
  let (mut found, mut passed) = (Vec::new(), Vec::new());
  let mut pending = vec![folder.to_owned()];
  let skip = |path: PathBuf, reason: String| Skipped {
    path: path.display().to_string(),
    reason,
  };
  while let Some(dir) = pending.pop() {
    let listed = std::fs::read_dir(&dir).and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>());
    let mut entries = match listed {
      Ok(entries) => entries,
      Err(err) if dir == folder => {
        return Err(Error::pixstore(format!(
          "cannot read the folder {}: {err}",
          dir.display()
        )))
      }
      Err(err) => {
        passed.push(skip(dir, format!("failed: the folder cannot be read: {err}")));
        continue;
      }
    };
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
      let path = entry.path();
      let kind = match entry.file_type() {
        Ok(kind) => kind,
        Err(err) => {
          passed.push(skip(path, format!("failed: cannot be read: {err}")));
          continue;
        }
      };
      if kind.is_dir() {
        pending.push(path);
      } else if kind.is_file() {
        found.push(path);
      } else if kind.is_symlink() {
        match std::fs::metadata(&path) {
          Ok(target) if target.is_file() => found.push(path),
          Ok(target) if target.is_dir() => passed.push(skip(path, "link to a folder, not followed".into())),
          Ok(_) => passed.push(skip(path, "not a regular file".into())),
          Err(err) => passed.push(skip(path, format!("broken link: {err}"))),
        }
      } else {
        passed.push(skip(path, "not a regular file".into()));
      }
    }
  }
  found.sort();
  Ok((found, passed))
}

/// Stores every image under `folder` (recursively), with `prefix` as the
/// `dir` of its id; non-images are skipped with the reason. Ids derive from
/// each file's time, its path within `folder` and its content
/// ([`id::for_content`]), so a second run after an interruption finds what the
/// first stored and does not store it twice, while two files of the same bytes
/// and time (copies of one placeholder, a tar's second-resolution times) are
/// two images.
pub async fn import(
  backend: Arc<dyn Backend>,
  folder: &Path,
  prefix: Option<String>,
  concurrency: usize,
  rules: ImageRules,
  control: &Control,
) -> Result<ImportReport> {
  let prefix = id::prefix_for(prefix.as_deref())?;
  let root = Arc::new(folder.to_owned());
  let folder = folder.to_owned();
  let (files, passed) = blocking(move || files_under(&folder)).await?;
  let total = files.len() as u64;
  let report = Arc::new(Mutex::new(ImportReport {
    skipped: passed,
    ..ImportReport::default()
  }));
  let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
  control.progress("files", 0, Some(total));
  let tasks = files.into_iter().map(|path| {
    let (backend, report, rules, prefix, done, control, root) = (
      Arc::clone(&backend),
      Arc::clone(&report),
      rules.clone(),
      prefix.clone(),
      Arc::clone(&done),
      control.clone(),
      Arc::clone(&root),
    );
    async move {
      if control.cancelled() {
        return;
      }
      let shown = path.display().to_string();
      let outcome: Result<std::result::Result<String, String>> = async {
        let file_rules = rules.clone();
        let read_path = path.clone();
        let root = root.clone();
        let loaded = blocking(move || {
          let modified = std::fs::metadata(&read_path)?.modified()?;
          let image = PlainImage::read_file(&read_path, &file_rules)?;
          let within = read_path.strip_prefix(&*root).unwrap_or(&read_path);
          let digest = Sha256::new()
            .chain_update(within.as_os_str().as_encoded_bytes())
            .chain_update([0])
            .chain_update(image.bytes())
            .finalize();
          let time = modified.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
          Ok((image, digest, time))
        })
        .await;
        let (image, digest, time) = match loaded {
          Ok(loaded) => loaded,
          Err(err) if err.kind == crate::error::ErrorKind::Pixstore => return Ok(Err(skip_reason(&err, &path))),
          Err(err) => return Err(err),
        };
        let id = id::for_content(prefix.as_deref(), time, &digest);
        match Arc::clone(&backend).import(id.clone(), image, rules).await? {
          Some(record) => Ok(Ok(record.id)),
          None => Ok(Err(format!("already imported as {id}"))),
        }
      }
      .await;
      let mut report = report.lock().expect("report lock");
      match outcome {
        Ok(Ok(id)) => report.imported.push(Imported { path: shown, id }),
        Ok(Err(reason)) => report.skipped.push(Skipped { path: shown, reason }),
        Err(err) => report.skipped.push(Skipped {
          path: shown,
          reason: format!("failed: {}", err.message),
        }),
      }
      drop(report);
      let done = done.fetch_add(1, Ordering::Relaxed) + 1;
      control.progress("files", done, Some(total));
    }
  });
  stream::iter(tasks)
    .buffer_unordered(concurrency.max(1))
    .collect::<Vec<()>>()
    .await;
  let mut report = into_report(report, "import")?;
  report.interrupted = control.cancelled();
  report.imported.sort_by(|a, b| a.path.cmp(&b.path));
  report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
  Ok(report)
}

/// The reason a file is not imported, from the error reading it gave.
fn skip_reason(err: &Error, path: &Path) -> String {
  if err.message == "Invalid image file" {
    return match crate::sniff::detect_format(&std::fs::read(path).unwrap_or_default()) {
      Some(format) => format!("{format} is not one of imageFormats"),
      None => "not an image".into(),
    };
  }
  err.message.clone()
}

/// The report of `migrate`.
#[derive(Debug, Default, Serialize)]
pub struct MigrateReport {
  /// Records copied with their image.
  pub migrated: u64,
  /// Records the destination already had (a resumed run).
  pub skipped: u64,
  /// Records that could not be copied, and why.
  pub failed: Vec<Failed>,
  /// Whether it stopped before the end.
  pub interrupted: bool,
}

/// Copies every record and its encrypted image, as they are, from `from` to
/// `to`, checking that each image authenticates under its key. The source is
/// only read; what the destination already has (same token or newer) is
/// skipped, so a second run resumes an interrupted one.
pub async fn migrate(from: Arc<dyn Backend>, to: Arc<dyn Backend>, control: &Control) -> Result<MigrateReport> {
  let report = Arc::new(Mutex::new(MigrateReport::default()));
  let interrupted = each_record(&from, control, "records", |listed| {
    let (from, to, report) = (Arc::clone(&from), Arc::clone(&to), Arc::clone(&report));
    async move {
      let id = match listed {
        Ok(record) => record.id,
        Err(unreadable) => {
          report.lock().expect("report lock").failed.push(unreadable.into());
          return Ok(());
        }
      };
      let outcome: Result<bool> = async {
        let Some((record, ciphertext)) = Arc::clone(&from).read_image(id.clone()).await? else {
          return Err(Error::pixstore("the record is gone"));
        };
        if !crate::crypto::belongs_to(&ciphertext, &record.meta) {
          return Err(Error::pixstore("the image does not authenticate under its key"));
        }
        Arc::clone(&to).put_image(record, ciphertext).await
      }
      .await;
      let mut report = report.lock().expect("report lock");
      match outcome {
        Ok(true) => report.migrated += 1,
        Ok(false) => report.skipped += 1,
        Err(err) => report.failed.push(Failed {
          id,
          reason: err.message,
        }),
      }
      Ok(())
    }
  })
  .await?;
  let mut report = into_report(report, "migrate")?;
  report.interrupted = interrupted;
  report.failed.sort_by(|a, b| a.id.cmp(&b.id));
  Ok(report)
}

/// The report of `rekey`.
#[derive(Debug, Default, Serialize)]
pub struct RekeyReport {
  /// Records whose stored key was rewrapped (or unwrapped).
  pub rekeyed: u64,
  /// Records already as asked.
  pub skipped: u64,
  /// Records that could not be, and why (e.g. a key wrapped under a master key not listed).
  pub failed: Vec<Failed>,
  /// Whether it stopped before the end.
  pub interrupted: bool,
}

/// Rewraps the key of every record under the first master key (wrapping a
/// plain store too), or with `unwrap` stores them all plain again; no image
/// is rewritten. Resumable: what is done already is skipped.
pub async fn rekey(backend: Arc<dyn Backend>, unwrap: bool, control: &Control) -> Result<RekeyReport> {
  let report = Arc::new(Mutex::new(RekeyReport::default()));
  let interrupted = each_record(&backend, control, "records", |listed| {
    let (backend, report) = (Arc::clone(&backend), Arc::clone(&report));
    async move {
      // rekey_record reads the row itself: an unreadable one fails there, with its reason.
      let id = listed_id(&listed).to_string();
      let outcome = Arc::clone(&backend).rekey_record(id.clone(), unwrap).await;
      let mut report = report.lock().expect("report lock");
      match outcome {
        Ok(true) => report.rekeyed += 1,
        Ok(false) => report.skipped += 1,
        Err(err) => report.failed.push(Failed {
          id,
          reason: err.message,
        }),
      }
      Ok(())
    }
  })
  .await?;
  if !interrupted {
    backend.compact().await?;
  }
  let mut report = into_report(report, "rekey")?;
  report.interrupted = interrupted;
  Ok(report)
}

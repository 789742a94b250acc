//! The numbers of one backend (one JS environment): writes, served payloads,
//! bytes, latency histograms, the default endpoint's connections and
//! responses. Counting is a few relaxed atomic operations on fixed arrays (no
//! lock, no allocation); reading takes a [`StatsSnapshot`], which renders as
//! Prometheus' text exposition format (names and units as prom-client has them).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::request_log::RequestLogQueue;
use crate::wire::WireState;

/// Upper bounds of the duration histograms' buckets, in nanoseconds (100 µs
/// to 10 s: payloads of small images take well under a millisecond, saves of
/// large ones tens of milliseconds). Observations above the last go to `+Inf`.
const BUCKET_BOUNDS_NS: [u64; 16] = [
  100_000,
  250_000,
  500_000,
  1_000_000,
  2_500_000,
  5_000_000,
  10_000_000,
  25_000_000,
  50_000_000,
  100_000_000,
  250_000_000,
  500_000_000,
  1_000_000_000,
  2_500_000_000,
  5_000_000_000,
  10_000_000_000,
];

/// The status codes the default endpoint answers with itself (hyper answers
/// 408 and 431 before a request reaches it).
pub const ENDPOINT_STATUSES: [u16; 5] = [200, 204, 400, 404, 503];

/// The `Content-Type` of the Prometheus text format (prom-client's `register.contentType`).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A histogram with fixed buckets ([`BUCKET_BOUNDS_NS`]); observing is two
/// relaxed atomic additions.
#[derive(Default)]
pub struct Histogram {
  /// Observations per bucket (not cumulative); the last is `+Inf`.
  counts: [AtomicU64; BUCKET_BOUNDS_NS.len() + 1],
  sum_ns: AtomicU64,
}

impl Histogram {
  /// Counts one observation.
  pub fn observe(&self, elapsed: Duration) {
    let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    let bucket = BUCKET_BOUNDS_NS
      .iter()
      .position(|bound| ns <= *bound)
      .unwrap_or(BUCKET_BOUNDS_NS.len());
    self.counts[bucket].fetch_add(1, Relaxed);
    self.sum_ns.fetch_add(ns, Relaxed);
  }

  fn snapshot(&self) -> HistogramSnapshot {
    let mut cumulative = 0;
    let buckets = self
      .counts
      .iter()
      .enumerate()
      .map(|(index, count)| {
        cumulative += count.load(Relaxed);
        let bound = BUCKET_BOUNDS_NS.get(index).map_or(f64::INFINITY, |ns| *ns as f64 / 1e9);
        (bound, cumulative)
      })
      .collect();
    HistogramSnapshot {
      buckets,
      sum_seconds: self.sum_ns.load(Relaxed) as f64 / 1e9,
      count: cumulative,
    }
  }
}

/// A histogram as read: cumulative counts by upper bound in seconds (the
/// last bound is infinity), the sum in seconds and the count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
  /// `(le, observations ≤ le)`, as Prometheus' `_bucket` series.
  pub buckets: Vec<(f64, u64)>,
  /// Sum of the observations, in seconds.
  pub sum_seconds: f64,
  /// Number of observations.
  pub count: u64,
}

/// The write operations of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
  /// `saveImage`, `saveImageFromFile`.
  Save = 0,
  /// `updateImage`, `updateImageFromFile`.
  Update = 1,
  /// `deleteImage`.
  Delete = 2,
}

impl Operation {
  /// Every operation, in index order.
  pub const ALL: [Operation; 3] = [Operation::Save, Operation::Update, Operation::Delete];

  /// The label value: `save`, `update`, `delete`.
  pub fn name(self) -> &'static str {
    match self {
      Operation::Save => "save",
      Operation::Update => "update",
      Operation::Delete => "delete",
    }
  }
}

/// The counters of one backend. They live as long as the backend of the JS
/// environment (across `initPixstoreBackend` and `closePixstoreBackend`):
/// counters only grow, as Prometheus expects.
#[derive(Default)]
pub struct Stats {
  /// Successful writes by [`Operation`].
  writes: [AtomicU64; 3],
  /// Failed writes by [`Operation`].
  write_failures: [AtomicU64; 3],
  writes_in_flight: AtomicU64,
  received_bytes: AtomicU64,
  /// Payloads by wire state byte.
  served: [AtomicU64; 7],
  served_bytes: AtomicU64,
  write_duration: [Histogram; 3],
  serve_duration: Histogram,
  /// Default endpoint responses by [`ENDPOINT_STATUSES`] index.
  endpoint_responses: [AtomicU64; ENDPOINT_STATUSES.len()],
  open_connections: AtomicU64,
  /// The request log hook (off until a listener is set).
  pub request_log: RequestLogQueue,
}

/// Counts one write from its start: in flight until dropped; then a success
/// (with its bytes and duration) if [`WriteTracker::succeeded`] was called,
/// else a failure (an error, or a call abandoned when its environment ended).
pub struct WriteTracker<'a> {
  stats: &'a Stats,
  operation: Operation,
  started: Instant,
  stored_bytes: Option<u64>,
}

impl WriteTracker<'_> {
  /// Marks the write successful; `bytes` is the size of the image it stored (0 for a delete).
  pub fn succeeded(&mut self, bytes: u64) {
    self.stored_bytes = Some(bytes);
  }
}

impl Drop for WriteTracker<'_> {
  fn drop(&mut self) {
    let stats = self.stats;
    let index = self.operation as usize;
    match self.stored_bytes {
      Some(bytes) => {
        stats.write_duration[index].observe(self.started.elapsed());
        stats.received_bytes.fetch_add(bytes, Relaxed);
        stats.writes[index].fetch_add(1, Relaxed);
      }
      None => {
        stats.write_failures[index].fetch_add(1, Relaxed);
      }
    }
    stats.writes_in_flight.fetch_sub(1, Relaxed);
  }
}

/// An open connection of the default endpoint, counted until dropped.
pub struct OpenConnection<'a>(&'a Stats);

impl Drop for OpenConnection<'_> {
  fn drop(&mut self) {
    self.0.open_connections.fetch_sub(1, Relaxed);
  }
}

/// What the stats cannot count themselves: read from the backend when a snapshot is taken.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
  /// Whether the backend is initialized and not closed.
  pub backend_open: bool,
  /// Jobs waiting for the local store's writer thread (0 for remote stores).
  pub writer_queue_depth: u64,
}

/// Everything at one moment (each number read atomically, not all together).
#[derive(Debug, Clone, PartialEq)]
pub struct StatsSnapshot {
  /// Whether the backend is initialized and not closed.
  pub backend_open: bool,
  /// Successful writes by [`Operation`] index.
  pub writes: [u64; 3],
  /// Failed writes by [`Operation`] index.
  pub write_failures: [u64; 3],
  /// Writes started and not finished.
  pub writes_in_flight: u64,
  /// Jobs waiting for the local store's writer thread.
  pub writer_queue_depth: u64,
  /// Image bytes stored by successful saves and updates.
  pub received_bytes: u64,
  /// Payloads built, by wire state byte.
  pub served: [u64; 7],
  /// Bytes of the payloads built.
  pub served_bytes: u64,
  /// Durations of successful writes by [`Operation`] index.
  pub write_duration: [HistogramSnapshot; 3],
  /// Durations of payload builds.
  pub serve_duration: HistogramSnapshot,
  /// Default endpoint responses, by [`ENDPOINT_STATUSES`] index.
  pub endpoint_responses: [u64; ENDPOINT_STATUSES.len()],
  /// Open connections of the default endpoint.
  pub open_connections: u64,
  /// Request log entries dropped because the listener fell behind.
  pub request_log_dropped: u64,
}

impl Stats {
  /// Starts counting a write (see [`WriteTracker`]).
  pub fn write(&self, operation: Operation) -> WriteTracker<'_> {
    self.writes_in_flight.fetch_add(1, Relaxed);
    WriteTracker {
      stats: self,
      operation,
      started: Instant::now(),
      stored_bytes: None,
    }
  }

  /// Counts a payload built in `elapsed` (default endpoint or customEndpointHelper).
  pub fn served(&self, payload: &[u8], elapsed: Duration) {
    if let Some(counter) = payload.first().and_then(|state| self.served.get(usize::from(*state))) {
      counter.fetch_add(1, Relaxed);
    }
    self.served_bytes.fetch_add(payload.len() as u64, Relaxed);
    self.serve_duration.observe(elapsed);
  }

  /// Counts a response of the default endpoint.
  pub fn endpoint_response(&self, status: u16) {
    if let Some(index) = ENDPOINT_STATUSES.iter().position(|known| *known == status) {
      self.endpoint_responses[index].fetch_add(1, Relaxed);
    }
  }

  /// Counts an accepted connection of the default endpoint until the result is dropped.
  pub fn connection_opened(&self) -> OpenConnection<'_> {
    self.open_connections.fetch_add(1, Relaxed);
    OpenConnection(self)
  }

  /// Reads every number.
  pub fn snapshot(&self, gauges: Gauges) -> StatsSnapshot {
    let load = |counters: &[AtomicU64]| -> Vec<u64> { counters.iter().map(|c| c.load(Relaxed)).collect() };
    StatsSnapshot {
      backend_open: gauges.backend_open,
      writes: load(&self.writes).try_into().expect("3 operations"),
      write_failures: load(&self.write_failures).try_into().expect("3 operations"),
      writes_in_flight: self.writes_in_flight.load(Relaxed),
      writer_queue_depth: gauges.writer_queue_depth,
      received_bytes: self.received_bytes.load(Relaxed),
      served: load(&self.served).try_into().expect("7 states"),
      served_bytes: self.served_bytes.load(Relaxed),
      write_duration: Operation::ALL.map(|operation| self.write_duration[operation as usize].snapshot()),
      serve_duration: self.serve_duration.snapshot(),
      endpoint_responses: load(&self.endpoint_responses)
        .try_into()
        .expect("one counter per status"),
      open_connections: self.open_connections.load(Relaxed),
      request_log_dropped: self.request_log.dropped(),
    }
  }
}

/// Writes one metric family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
  let _ = writeln!(out, "# HELP {name} {help}");
  let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes a family of one unlabelled series.
fn scalar(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
  family(out, name, kind, help);
  let _ = writeln!(out, "{name} {value}");
}

/// Writes a histogram's `_bucket`, `_sum` and `_count` series; `label` is
/// `name="value"` or empty.
fn histogram(out: &mut String, name: &str, label: &str, snapshot: &HistogramSnapshot) {
  let separator = if label.is_empty() { "" } else { "," };
  for (bound, count) in &snapshot.buckets {
    let le = match bound.is_finite() {
      true => bound.to_string(),
      false => "+Inf".to_string(),
    };
    let _ = writeln!(out, "{name}_bucket{{{label}{separator}le=\"{le}\"}} {count}");
  }
  let braces = |label: &str| match label.is_empty() {
    true => String::new(),
    false => format!("{{{label}}}"),
  };
  let _ = writeln!(out, "{name}_sum{} {}", braces(label), snapshot.sum_seconds);
  let _ = writeln!(out, "{name}_count{} {}", braces(label), snapshot.count);
}

impl StatsSnapshot {
  /// The numbers in Prometheus' text exposition format 0.0.4
  /// (served with [`PROMETHEUS_CONTENT_TYPE`]).
  pub fn prometheus(&self) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let o = &mut out;
    family(
      o,
      "pixstore_backend_open",
      "gauge",
      "1 while the backend is initialized and not closed, else 0.",
    );
    let _ = writeln!(o, "pixstore_backend_open {}", u8::from(self.backend_open));
    let writes = [
      (
        "pixstore_saves_total",
        "Images stored by saveImage and saveImageFromFile.",
      ),
      (
        "pixstore_updates_total",
        "Images replaced by updateImage and updateImageFromFile.",
      ),
      (
        "pixstore_deletes_total",
        "deleteImage calls that completed (true or false).",
      ),
    ];
    for ((name, help), count) in writes.iter().zip(self.writes) {
      family(o, name, "counter", help);
      let _ = writeln!(o, "{name} {count}");
    }
    family(
      o,
      "pixstore_write_failures_total",
      "counter",
      "Saves, updates and deletes that failed (invalid image, image not found, storage error, closed).",
    );
    for operation in Operation::ALL {
      let _ = writeln!(
        o,
        "pixstore_write_failures_total{{operation=\"{}\"}} {}",
        operation.name(),
        self.write_failures[operation as usize]
      );
    }
    scalar(
      o,
      "pixstore_writes_in_flight",
      "gauge",
      "Saves, updates and deletes started and not finished.",
      self.writes_in_flight,
    );
    scalar(
      o,
      "pixstore_writer_queue_depth",
      "gauge",
      "Writes and deletes waiting for the local store's writer thread (0 for remote stores).",
      self.writer_queue_depth,
    );
    scalar(
      o,
      "pixstore_received_bytes_total",
      "counter",
      "Image bytes stored by successful saves and updates (before encryption).",
      self.received_bytes,
    );
    family(
      o,
      "pixstore_served_total",
      "counter",
      "Wire payloads built for the default endpoint and customEndpointHelper, by wire state.",
    );
    for state in WireState::ALL {
      let _ = writeln!(
        o,
        "pixstore_served_total{{state=\"{}\"}} {}",
        state.name(),
        self.served[state as usize]
      );
    }
    scalar(
      o,
      "pixstore_served_bytes_total",
      "counter",
      "Bytes of the wire payloads built (HEAD requests included).",
      self.served_bytes,
    );
    family(
      o,
      "pixstore_write_duration_seconds",
      "histogram",
      "Duration of successful saves, updates and deletes, from the call to the commit.",
    );
    for operation in Operation::ALL {
      let label = format!("operation=\"{}\"", operation.name());
      histogram(
        o,
        "pixstore_write_duration_seconds",
        &label,
        &self.write_duration[operation as usize],
      );
    }
    family(
      o,
      "pixstore_serve_duration_seconds",
      "histogram",
      "Duration of building a wire payload: id and proof checks, record and image read.",
    );
    histogram(o, "pixstore_serve_duration_seconds", "", &self.serve_duration);
    family(
      o,
      "pixstore_endpoint_responses_total",
      "counter",
      "Responses of the default endpoint, by HTTP status code.",
    );
    for (code, count) in ENDPOINT_STATUSES.iter().zip(self.endpoint_responses) {
      let _ = writeln!(o, "pixstore_endpoint_responses_total{{code=\"{code}\"}} {count}");
    }
    scalar(
      o,
      "pixstore_endpoint_open_connections",
      "gauge",
      "Open TCP connections of the default endpoint.",
      self.open_connections,
    );
    scalar(
      o,
      "pixstore_request_log_dropped_total",
      "counter",
      "Request log entries dropped because the request logger fell behind.",
      self.request_log_dropped,
    );
    out
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn histogram_buckets_are_cumulative_and_bounded_inclusively() {
    let histogram = Histogram::default();
    histogram.observe(Duration::from_micros(100)); // exactly the first bound
    histogram.observe(Duration::from_micros(101));
    histogram.observe(Duration::from_millis(3));
    histogram.observe(Duration::from_secs(60));
    let snapshot = histogram.snapshot();
    assert_eq!(snapshot.buckets.len(), 17);
    assert_eq!(snapshot.buckets[0], (0.0001, 1));
    assert_eq!(snapshot.buckets[1], (0.00025, 2));
    assert_eq!(snapshot.buckets[4], (0.0025, 2));
    assert_eq!(snapshot.buckets[5], (0.005, 3));
    assert_eq!(snapshot.buckets[15], (10.0, 3));
    assert_eq!(snapshot.buckets[16], (f64::INFINITY, 4));
    assert_eq!(snapshot.count, 4);
    assert!((snapshot.sum_seconds - 60.003201).abs() < 1e-9);
  }

  #[test]
  fn writes_count_as_in_flight_until_done_then_as_success_or_failure() {
    let stats = Stats::default();
    let mut save = stats.write(Operation::Save);
    let update = stats.write(Operation::Update);
    assert_eq!(stats.snapshot(Gauges::default()).writes_in_flight, 2);
    save.succeeded(1234);
    drop(save);
    drop(update);
    let snapshot = stats.snapshot(Gauges::default());
    assert_eq!(snapshot.writes_in_flight, 0);
    assert_eq!(snapshot.writes, [1, 0, 0]);
    assert_eq!(snapshot.write_failures, [0, 1, 0]);
    assert_eq!(snapshot.received_bytes, 1234);
    assert_eq!(snapshot.write_duration[0].count, 1);
    assert_eq!(snapshot.write_duration[1].count, 0, "failures are not timed");
  }

  #[test]
  fn payloads_count_by_state_and_size() {
    let stats = Stats::default();
    stats.served(&[0, 1, 2, 3], Duration::from_micros(50));
    stats.served(&[5], Duration::from_micros(50));
    stats.served(&[], Duration::from_micros(50));
    let snapshot = stats.snapshot(Gauges::default());
    assert_eq!(snapshot.served, [1, 0, 0, 0, 0, 1, 0]);
    assert_eq!(snapshot.served_bytes, 5);
    assert_eq!(snapshot.serve_duration.count, 3);
  }

  #[test]
  fn connections_and_responses() {
    let stats = Stats::default();
    let first = stats.connection_opened();
    let second = stats.connection_opened();
    drop(first);
    stats.endpoint_response(200);
    stats.endpoint_response(404);
    stats.endpoint_response(404);
    stats.endpoint_response(418);
    let snapshot = stats.snapshot(Gauges::default());
    assert_eq!(snapshot.open_connections, 1);
    assert_eq!(snapshot.endpoint_responses, [1, 0, 0, 2, 0]);
    drop(second);
    assert_eq!(stats.snapshot(Gauges::default()).open_connections, 0);
  }

  #[test]
  fn prometheus_text_has_help_type_and_samples() {
    let stats = Stats::default();
    stats.write(Operation::Save).succeeded(10);
    stats.served(&[1, 0, 0], Duration::from_millis(2));
    let text = stats
      .snapshot(Gauges {
        backend_open: true,
        writer_queue_depth: 3,
      })
      .prometheus();
    assert!(text.contains("# TYPE pixstore_saves_total counter\npixstore_saves_total 1\n"));
    assert!(text.contains("pixstore_backend_open 1\n"));
    assert!(text.contains("pixstore_writer_queue_depth 3\n"));
    assert!(text.contains("pixstore_served_total{state=\"Updated\"} 1\n"));
    assert!(text.contains("pixstore_served_total{state=\"MissingID\"} 0\n"));
    assert!(text.contains("pixstore_serve_duration_seconds_bucket{le=\"0.001\"} 0\n"));
    assert!(text.contains("pixstore_serve_duration_seconds_bucket{le=\"0.0025\"} 1\n"));
    assert!(text.contains("pixstore_serve_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
    assert!(text.contains("pixstore_serve_duration_seconds_sum 0.002\n"));
    assert!(text.contains("pixstore_write_duration_seconds_bucket{operation=\"save\",le=\"+Inf\"} 1\n"));
    assert!(text.contains("pixstore_write_duration_seconds_count{operation=\"delete\"} 0\n"));
    assert!(text.contains("pixstore_endpoint_responses_total{code=\"503\"} 0\n"));
    // Every sample line belongs to a family announced before it.
    let mut announced = Vec::new();
    for line in text.lines() {
      if let Some(rest) = line.strip_prefix("# TYPE ") {
        announced.push(rest.split(' ').next().unwrap().to_string());
      } else if !line.starts_with('#') {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
          .iter()
          .find_map(|suffix| {
            name
              .strip_suffix(suffix)
              .filter(|base| announced.iter().any(|a| a == base))
          })
          .unwrap_or(name);
        assert_eq!(announced.last().map(String::as_str), Some(family), "{line}");
      }
    }
  }
}

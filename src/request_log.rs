//! The request log hook of the default endpoint: entries queue here and a
//! listener (the binding's threadsafe function into JS) is woken once per
//! batch, never waited for. Off until a listener is set; then a full queue
//! (a listener that fell behind) drops entries and counts them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use crate::wire::WireState;

/// Entries kept while the listener has not taken them; more are dropped.
pub const MAX_QUEUED_ENTRIES: usize = 10_000;

/// One request the default endpoint answered.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLog {
  /// The request method.
  pub method: String,
  /// The route of ours the path matched (image, health or metrics route),
  /// `None` for any other path.
  pub route: Option<String>,
  /// The image id asked for, percent-decoded, when it was a valid one.
  pub image_id: Option<String>,
  /// The state of the wire payload served, if one was.
  pub state: Option<WireState>,
  /// The HTTP status.
  pub status: u16,
  /// Body bytes sent (0 for HEAD and 204).
  pub bytes: u64,
  /// From the request's arrival to its response being ready.
  pub duration: Duration,
  /// The client's address.
  pub remote_address: Option<SocketAddr>,
}

/// Wakes the listener: returns false if it is gone.
pub type Wake = Arc<dyn Fn() -> bool + Send + Sync>;

/// The queue between the endpoint and the listener.
#[derive(Default)]
pub struct RequestLogQueue {
  enabled: AtomicBool,
  wake: RwLock<Option<Wake>>,
  entries: Mutex<Vec<RequestLog>>,
  /// A wake-up is on its way and the listener has not taken the entries yet.
  woken: AtomicBool,
  dropped: AtomicU64,
}

impl RequestLogQueue {
  /// Whether a listener is set (one relaxed load: what the endpoint checks per request).
  pub fn enabled(&self) -> bool {
    self.enabled.load(Ordering::Relaxed)
  }

  /// Sets the listener, or removes it (`None`; queued entries are dropped then).
  pub fn set_listener(&self, wake: Option<Wake>) {
    let mut slot = self.wake.write().unwrap_or_else(PoisonError::into_inner);
    self.enabled.store(wake.is_some(), Ordering::Relaxed);
    if wake.is_none() {
      self.entries.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
    *slot = wake;
    self.woken.store(false, Ordering::SeqCst);
  }

  /// Queues an entry and wakes the listener unless a wake-up is already on
  /// its way (nothing is kept without a listener).
  pub fn push(&self, entry: RequestLog) {
    if !self.enabled() {
      return;
    }
    {
      let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
      if entries.len() >= MAX_QUEUED_ENTRIES {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        return;
      }
      entries.push(entry);
    }
    if self.woken.swap(true, Ordering::SeqCst) {
      return;
    }
    let wake = self.wake.read().unwrap_or_else(PoisonError::into_inner).clone();
    if !wake.is_some_and(|wake| wake()) {
      self.woken.store(false, Ordering::SeqCst);
    }
  }

  /// Takes the queued entries (the listener's side). The next push after this wakes it again.
  pub fn take(&self) -> Vec<RequestLog> {
    self.woken.store(false, Ordering::SeqCst);
    std::mem::take(&mut *self.entries.lock().unwrap_or_else(PoisonError::into_inner))
  }

  /// Entries dropped because the queue was full.
  pub fn dropped(&self) -> u64 {
    self.dropped.load(Ordering::Relaxed)
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::sync::atomic::AtomicUsize;

  fn entry(status: u16) -> RequestLog {
    RequestLog {
      method: "GET".into(),
      route: Some("/pixstore-image".into()),
      image_id: None,
      state: None,
      status,
      bytes: 0,
      duration: Duration::ZERO,
      remote_address: None,
    }
  }

  #[test]
  fn one_wake_up_per_batch_and_nothing_lost() {
    let queue = RequestLogQueue::default();
    assert!(!queue.enabled());
    queue.push(entry(200));
    assert!(queue.take().is_empty(), "no listener: nothing is kept");
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&wakes);
    queue.set_listener(Some(Arc::new(move || {
      counter.fetch_add(1, Ordering::SeqCst);
      true
    })));
    assert!(queue.enabled());
    queue.push(entry(200));
    queue.push(entry(404));
    assert_eq!(wakes.load(Ordering::SeqCst), 1);
    let taken: Vec<u16> = queue.take().iter().map(|e| e.status).collect();
    assert_eq!(taken, [200, 404]);
    queue.push(entry(400));
    assert_eq!(wakes.load(Ordering::SeqCst), 2, "woken again after a take");
    queue.set_listener(None);
    assert!(!queue.enabled());
    assert!(queue.take().is_empty());
  }

  #[test]
  fn a_full_queue_drops_and_counts() {
    let queue = RequestLogQueue::default();
    queue.set_listener(Some(Arc::new(|| true)));
    for _ in 0..MAX_QUEUED_ENTRIES + 5 {
      queue.push(entry(200));
    }
    assert_eq!(queue.dropped(), 5);
    assert_eq!(queue.take().len(), MAX_QUEUED_ENTRIES);
  }

  #[test]
  fn a_listener_that_is_gone_is_tried_again() {
    let queue = RequestLogQueue::default();
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&wakes);
    queue.set_listener(Some(Arc::new(move || {
      counter.fetch_add(1, Ordering::SeqCst);
      false
    })));
    queue.push(entry(200));
    queue.push(entry(200));
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
  }
}

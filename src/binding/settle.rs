//! Promises of one JS environment, settled from any thread through a single
//! threadsafe function. napi-rs's `spawn_future` creates a threadsafe
//! function for every promise; measured here, a call round trip through it
//! took 20–30 µs more than one through a long-lived one (60–85 µs against
//! 35–60 µs for an empty call, sequentially, on this 2-core VM).
//!
//! The function is unreferenced while no promise is pending, so an idle
//! backend never keeps the process alive. Node deletes it when the
//! environment ends; its finalizer marks it gone under a write lock that
//! every caller holds (read) around its call, so no runtime thread ever
//! calls a deleted function (the pattern napi-rs uses for its own).

use std::ffi::c_void;
use std::future::Future;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::{sys, Env, JsError};

/// A settled outcome, made into a JS value on the JS thread.
type Settle = Box<dyn FnOnce(sys::napi_env) -> napi::Result<sys::napi_value> + Send>;

struct Completion {
  deferred: Deferred,
  settle: Settle,
  shared: Arc<Shared>,
}

/// A deferred travels to a runtime thread and back; it is only used on the JS thread.
struct Deferred(sys::napi_deferred);
// SAFETY: the deferred is created and settled on the JS thread; other threads only carry it.
unsafe impl Send for Deferred {}

/// The threadsafe function, `None` once Node has finalized it.
struct Shared {
  tsfn: RwLock<Option<Tsfn>>,
  /// Promises not yet settled.
  pending: AtomicUsize,
}

#[derive(Clone, Copy)]
struct Tsfn(sys::napi_threadsafe_function);
// SAFETY: N-API threadsafe functions may be called from any thread until finalized,
// which `Shared::tsfn` tracks.
unsafe impl Send for Tsfn {}
unsafe impl Sync for Tsfn {}

/// The settler of one environment.
pub struct Settler {
  shared: Arc<Shared>,
}

unsafe extern "C" fn settle(env: sys::napi_env, _js: sys::napi_value, _context: *mut c_void, data: *mut c_void) {
  // SAFETY: `data` is a `Box<Completion>` leaked by `spawn`.
  let completion = unsafe { Box::from_raw(data.cast::<Completion>()) };
  if env.is_null() {
    return; // The environment is going away: nothing to settle any more.
  }
  let Completion {
    deferred,
    settle,
    shared,
  } = *completion;
  unsafe {
    match settle(env) {
      Ok(value) => sys::napi_resolve_deferred(env, deferred.0, value),
      Err(err) => sys::napi_reject_deferred(env, deferred.0, JsError::from(err).into_value(env)),
    };
  }
  if shared.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
    if let Some(tsfn) = *shared.tsfn.read().expect("settler lock") {
      unsafe { sys::napi_unref_threadsafe_function(env, tsfn.0) };
    }
  }
}

unsafe extern "C" fn finalized(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
  // SAFETY: `data` is the strong count of `Shared` given to the function at creation.
  let shared = unsafe { Arc::from_raw(data.cast::<Shared>()) };
  // Waits for callers inside a call; after this no one calls the deleted function.
  *shared.tsfn.write().expect("settler lock") = None;
}

impl Settler {
  /// A settler for `env`.
  pub fn new(env: &Env) -> napi::Result<Settler> {
    let shared = Arc::new(Shared {
      tsfn: RwLock::new(None),
      pending: AtomicUsize::new(0),
    });
    let mut name = ptr::null_mut();
    let mut tsfn = ptr::null_mut();
    let finalize_data = Arc::into_raw(Arc::clone(&shared)).cast_mut().cast();
    unsafe {
      napi::check_status!(sys::napi_create_string_utf8(
        env.raw(),
        c"pixstore-native".as_ptr(),
        15,
        &mut name
      ))?;
      let created = napi::check_status!(sys::napi_create_threadsafe_function(
        env.raw(),
        ptr::null_mut(),
        ptr::null_mut(),
        name,
        0,
        1,
        finalize_data,
        Some(finalized),
        ptr::null_mut(),
        Some(settle),
        &mut tsfn,
      ));
      if let Err(err) = created {
        drop(Arc::from_raw(finalize_data.cast::<Shared>()));
        return Err(err);
      }
      napi::check_status!(sys::napi_unref_threadsafe_function(env.raw(), tsfn))?;
    }
    *shared.tsfn.write().expect("settler lock") = Some(Tsfn(tsfn));
    Ok(Settler { shared })
  }

  /// A promise already settled with `outcome` (for answers found on the JS thread).
  pub fn settled<'env, T: ToNapiValue>(
    &self,
    env: &'env Env,
    outcome: napi::Result<T>,
  ) -> napi::Result<PromiseRaw<'env, T>> {
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    unsafe {
      napi::check_status!(sys::napi_create_promise(env.raw(), &mut deferred, &mut promise))?;
      match outcome.and_then(|value| T::to_napi_value(env.raw(), value)) {
        Ok(value) => napi::check_status!(sys::napi_resolve_deferred(env.raw(), deferred, value))?,
        Err(err) => napi::check_status!(sys::napi_reject_deferred(
          env.raw(),
          deferred,
          JsError::from(err).into_value(env.raw())
        ))?,
      }
    }
    Ok(PromiseRaw::new(env.raw(), promise))
  }

  /// Runs `future` on the runtime and returns a promise of its outcome.
  pub fn spawn<'env, T, F>(&self, env: &'env Env, future: F) -> napi::Result<PromiseRaw<'env, T>>
  where
    T: ToNapiValue + Send + 'static,
    F: Future<Output = napi::Result<T>> + Send + 'static,
  {
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    unsafe { napi::check_status!(sys::napi_create_promise(env.raw(), &mut deferred, &mut promise))? };
    if self.shared.pending.fetch_add(1, Ordering::AcqRel) == 0 {
      if let Some(tsfn) = *self.shared.tsfn.read().expect("settler lock") {
        unsafe { napi::check_status!(sys::napi_ref_threadsafe_function(env.raw(), tsfn.0))? };
      }
    }
    let shared = Arc::clone(&self.shared);
    let deferred = Deferred(deferred);
    napi::bindgen_prelude::spawn(async move {
      let outcome = future.await;
      let settle: Settle = Box::new(move |env| match outcome {
        // SAFETY: called on the JS thread with its environment.
        Ok(value) => unsafe { T::to_napi_value(env, value) },
        Err(err) => Err(err),
      });
      let lock = Arc::clone(&shared);
      let completion = Box::into_raw(Box::new(Completion {
        deferred,
        settle,
        shared,
      }));
      let tsfn = lock.tsfn.read().expect("settler lock");
      let called = tsfn.map(|tsfn| unsafe {
        sys::napi_call_threadsafe_function(tsfn.0, completion.cast(), sys::ThreadsafeFunctionCallMode::nonblocking)
      });
      if called != Some(sys::Status::napi_ok) {
        // The environment is gone (or going), and its promise with it.
        drop(unsafe { Box::from_raw(completion) });
      }
    });
    Ok(PromiseRaw::new(env.raw(), promise))
  }
}

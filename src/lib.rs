//! pixstore-native: the backend of pixstore (encrypted image storage and
//! serving) in Rust. The core modules know nothing of Node; `binding` is the
//! one thin layer that exposes them to JavaScript.

pub mod admin;
pub mod backend;
pub mod buffer;
pub mod cache;
pub mod config;
pub mod crypto;
pub mod endpoint;
pub mod error;
pub mod id;
pub mod keys;
pub mod proof;
pub mod remote;
pub mod request_log;
pub mod service;
pub mod sniff;
pub mod stats;
pub mod store;
pub mod wire;

#[cfg(not(test))]
mod binding;

//! dumpwatch watches city cameras for illegal dumping.
//!
//! The pipeline, left to right (one module each):
//! [`ingest`] (RTSP, one task per camera) → [`decode`] (H.264/H.265 → pictures, libavcodec, blocking threads) →
//! [`detect`] (ONNX detector, one session per worker) → [`analyze`] (run live by [`watch`]; over
//! recorded clips by [`replay`] and [`eval`]) → [`recording`] → store → deliver; [`api`] serves metrics, status and the dashboard, and
//! [`app`] wires it all. Ground floor: [`config`], [`metrics`], [`slots`], [`geometry`],
//! [`detection`], [`codec`], [`annotate`], [`redact`], [`restart`], [`durable`].

pub mod accounts;
pub mod allocator;
pub mod analyze;
pub mod annotate;
pub mod api;
pub mod app;
pub mod clip;
pub mod clock;
pub mod codec;
pub mod config;
pub mod cpu_budget;
pub mod decode;
pub mod deliver;
pub mod detect;
pub mod detection;
pub mod durable;
pub mod eval;
pub mod evidence;
pub mod geometry;
pub mod hashing;
pub mod incident;
pub mod ingest;
pub mod metrics;
pub mod priority;
pub mod probe;
pub mod receiver;
pub mod recording;
pub mod redact;
pub mod replay;
pub mod restart;
pub mod shard;
pub mod slots;
pub mod store;
pub mod supervisor;
pub mod watch;

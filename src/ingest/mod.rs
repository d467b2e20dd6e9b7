//! Ingest: one task per camera pulls its RTSP stream (retina) and hands encoded frames to the
//! decoder. See [`camera::CameraTask`] for the loop and [`rtsp`] for the protocol side.

pub mod backoff;
pub mod camera;
mod error;
pub mod motion;
pub mod policy;
pub mod queue;
pub mod rtsp;
pub mod status;

pub use error::IngestError;
pub use queue::FrameRun;
pub use rtsp::{ConnectOptions, EncodedFrame, RtspStream, StreamInfo};
pub use status::{CameraState, CameraStatus, StatusBoard};

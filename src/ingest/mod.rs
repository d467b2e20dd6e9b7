//! Ingest: one task per camera pulls its RTSP stream (retina) and hands encoded frames to the
//! decoder; a camera analysed on its sub-stream also gets a [`record::RecordTask`] for its main
//! stream, which only fills the clip ring. See [`camera::CameraTask`] for the loop and [`rtsp`]
//! for the protocol side.

pub mod backoff;
pub mod camera;
mod error;
pub mod motion;
pub mod policy;
pub mod record;
pub mod rtsp;
pub mod status;

pub use crate::codec::EncodedFrame;
pub use error::IngestError;
pub use rtsp::{ConnectOptions, RtspStream, StreamInfo};
pub use status::{CameraState, CameraStatus, RecordingStatus, StatusBoard};

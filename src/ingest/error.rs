//! What can go wrong pulling a stream, classified so that operators (and `dumpwatch probe`)
//! see the cause, not a transport dump. Messages never contain credentials.

use std::time::Duration;

/// Why a camera is not streaming.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum IngestError {
    /// Nothing listens at the address: the camera is off, the port is wrong, or a firewall rejects.
    #[error("connection refused by {address}: is the camera on and the port right?")]
    ConnectionRefused {
        /// host:port.
        address: String,
    },
    /// The camera answered 401: credentials missing or wrong.
    #[error(
        "the camera rejected the credentials (401 Unauthorized): check the user name and password (username_env / password_env, or user:password@ for probe)"
    )]
    Unauthorized,
    /// The camera answered 404: the stream path does not exist.
    #[error("no such stream path (404 Not Found): check the path in the URL")]
    NotFound,
    /// A step did not finish in time.
    #[error("{step} timed out after {:.1} s", after.as_secs_f64())]
    Timeout {
        /// Which step: `connect/describe`, `setup`, `play`, `first frame`.
        step: &'static str,
        /// The limit that passed.
        after: Duration,
    },
    /// The stream stopped delivering video frames.
    #[error("no video frame for {:.1} s: the stream has stalled", after.as_secs_f64())]
    Stalled {
        /// The frame timeout that passed.
        after: Duration,
    },
    /// The camera's video is neither H.264 nor H.265.
    #[error(
        "unsupported codec {encoding:?}: dumpwatch decodes H.264 and H.265; set the camera's stream to one of them"
    )]
    UnsupportedCodec {
        /// The SDP encoding name (e.g. `jpeg`, `mp4v-es`).
        encoding: String,
    },
    /// The session description has no video stream.
    #[error("the camera offers no video stream")]
    NoVideo,
    /// The server closed the stream.
    #[error("the camera ended the stream")]
    Ended,
    /// Any other RTSP/RTP failure, with retina's description (connection and message context).
    #[error("RTSP error: {0}")]
    Rtsp(String),
}

impl IngestError {
    /// Whether retrying soon can help. Configuration problems (codec, path, credentials) are
    /// retried at the longest backoff, since an operator has to act first.
    pub fn is_config_problem(&self) -> bool {
        matches!(
            self,
            IngestError::Unauthorized
                | IngestError::NotFound
                | IngestError::UnsupportedCodec { .. }
        )
    }
}

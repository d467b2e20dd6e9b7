//! The RTSP client: the only file that names `retina`. It connects (DESCRIBE → SETUP → PLAY, each
//! step under a timeout), checks the codec, and yields encoded H.264 or H.265 access units in
//! Annex B form with the parameter sets before every keyframe (`FrameFormat::SIMPLE`), so any
//! decoder can start at any keyframe.

use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use retina::client::{Demuxed, PlayOptions, Session, SessionOptions, SetupOptions};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};
use url::Url;

use super::IngestError;
use crate::codec::{EncodedFrame, VideoCodec, push_annex_b};
use crate::config::{Credentials, Transport};
use crate::metrics::CameraMetrics;
use crate::redact::scrub;

/// What the session description says about the video.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamInfo {
    /// The video codec.
    pub codec: VideoCodec,
    /// RFC 6381 codec string, when parameters are known (`avc1.4d401f`: main profile).
    pub rfc6381: Option<String>,
    /// Width × height, when parameters are known.
    pub resolution: Option<(u32, u32)>,
    /// Frame rate declared in the SDP or SPS, if any.
    pub declared_fps: Option<f64>,
    /// Transport in use.
    pub transport: Transport,
}

/// Connection settings for one camera.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// RTSP URL without credentials.
    pub url: Url,
    /// Credentials for digest / basic authentication.
    pub credentials: Option<Credentials>,
    /// RTP transport.
    pub transport: Transport,
    /// Limit for each of DESCRIBE, SETUP and PLAY.
    pub step_timeout: Duration,
}

/// A playing RTSP session that yields encoded H.264 or H.265 frames.
pub struct RtspStream {
    demuxed: Demuxed,
    info: StreamInfo,
    password: Option<String>,
    next_seq: u64,
    /// The stream's current parameter sets, Annex B ((VPS,) SPS, PPS).
    parameter_sets: Vec<u8>,
}

async fn step<T>(
    name: &'static str,
    limit: Duration,
    histogram: Option<&prometheus::Histogram>,
    fut: impl Future<Output = Result<T, retina::Error>>,
    opts: &ConnectOptions,
) -> Result<T, IngestError> {
    let started = Instant::now();
    let result = tokio::time::timeout(limit, fut).await;
    if let Some(h) = histogram {
        h.observe(started.elapsed().as_secs_f64());
    }
    match result {
        Err(_) => Err(IngestError::Timeout {
            step: name,
            after: limit,
        }),
        Ok(Err(e)) => Err(classify(&e, opts)),
        Ok(Ok(v)) => Ok(v),
    }
}

/// Maps a retina error to what an operator can act on.
fn classify(e: &retina::Error, opts: &ConnectOptions) -> IngestError {
    match e.status_code() {
        Some(401) => return IngestError::Unauthorized,
        Some(404) => return IngestError::NotFound,
        _ => {}
    }
    let text = scrub(
        &e.to_string(),
        opts.credentials.as_ref().map(|c| c.password.as_str()),
    );
    if text.contains("Unable to connect") && text.contains("refused") {
        let address = format!(
            "{}:{}",
            opts.url.host_str().unwrap_or("?"),
            opts.url.port().unwrap_or(554)
        );
        return IngestError::ConnectionRefused { address };
    }
    IngestError::Rtsp(text)
}

impl RtspStream {
    /// Connects and starts playing the first video stream. Every step has `opts.step_timeout`.
    pub async fn connect(
        opts: &ConnectOptions,
        metrics: Option<&CameraMetrics>,
    ) -> Result<RtspStream, IngestError> {
        let session_opts = SessionOptions::default()
            .creds(
                opts.credentials
                    .as_ref()
                    .map(|c| retina::client::Credentials {
                        username: c.username.clone(),
                        password: c.password.clone(),
                    }),
            )
            .user_agent(format!("dumpwatch/{}", env!("CARGO_PKG_VERSION")));
        let mut session = step(
            "connect/describe",
            opts.step_timeout,
            metrics.map(|m| &m.describe_seconds),
            Session::describe(opts.url.clone(), session_opts),
            opts,
        )
        .await?;

        let video = session
            .streams()
            .iter()
            .position(|s| s.media() == "video")
            .ok_or(IngestError::NoVideo)?;
        let stream = &session.streams()[video];
        let Some(codec) = VideoCodec::from_encoding_name(stream.encoding_name()) else {
            return Err(IngestError::UnsupportedCodec {
                encoding: stream.encoding_name().to_ascii_lowercase(),
            });
        };
        let mut info = StreamInfo {
            codec,
            declared_fps: stream.framerate().map(f64::from),
            transport: opts.transport,
            ..StreamInfo::default()
        };
        let transport = match opts.transport {
            Transport::Tcp => retina::client::Transport::Tcp(Default::default()),
            Transport::Udp => retina::client::Transport::Udp(Default::default()),
        };
        step(
            "setup",
            opts.step_timeout,
            metrics.map(|m| &m.setup_seconds),
            session.setup(
                video,
                SetupOptions::default()
                    .transport(transport)
                    .frame_format(FrameFormat::SIMPLE),
            ),
            opts,
        )
        .await?;
        let playing = step(
            "play",
            opts.step_timeout,
            metrics.map(|m| &m.play_seconds),
            session.play(PlayOptions::default()),
            opts,
        )
        .await?;
        let demuxed = playing.demuxed().map_err(|e| classify(&e, opts))?;
        let mut parameter_sets = Vec::new();
        if let Some(ParametersRef::Video(p)) = demuxed.streams()[video].parameters() {
            fill_video_info(&mut info, p);
            parameter_sets = annex_b_parameter_sets(p);
        }
        Ok(RtspStream {
            demuxed,
            info,
            password: opts.credentials.as_ref().map(|c| c.password.clone()),
            next_seq: 0,
            parameter_sets,
        })
    }

    /// What the session says about the video (resolution may be filled in by the first frames).
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// The next video frame; `Ok(None)` when the server ended the stream. Not cancel-unsafe:
    /// dropping the future loses at most the frame being read.
    pub async fn next_frame(&mut self) -> Result<Option<EncodedFrame>, IngestError> {
        loop {
            let item = match self.demuxed.next().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    let text = scrub(&e.to_string(), self.password.as_deref());
                    return Err(IngestError::Rtsp(text));
                }
                Some(Ok(item)) => item,
            };
            let CodecItem::VideoFrame(frame) = item else {
                continue;
            };
            if frame.has_new_parameters() {
                let stream = &self.demuxed.streams()[frame.stream_id()];
                if let Some(ParametersRef::Video(p)) = stream.parameters() {
                    fill_video_info(&mut self.info, p);
                    self.parameter_sets = annex_b_parameter_sets(p);
                }
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            let mut keyframe = frame.is_random_access_point();
            let pts_s = frame.timestamp().elapsed_secs();
            let mut data = frame.into_data();
            if !keyframe
                && self.info.codec == VideoCodec::H265
                && self.info.codec.is_random_access(&data)
            {
                // An H.265 CRA or BLA picture (x265's and some cameras' keyframes after the
                // first): retina marks only IDR pictures as random access points and sends no
                // parameter sets with the others. A decoder can start here all the same
                // (libavcodec skips the leading pictures that refer to earlier ones), so it gets
                // the parameter sets in front, as an IDR picture does.
                let mut with_sets = Vec::with_capacity(self.parameter_sets.len() + data.len());
                with_sets.extend_from_slice(&self.parameter_sets);
                with_sets.extend_from_slice(&data);
                data = with_sets;
                keyframe = true;
            }
            return Ok(Some(EncodedFrame {
                keyframe,
                pts_s,
                captured_at: SystemTime::now(),
                received: Instant::now(),
                seq,
                all_frames: false,
                codec: self.info.codec,
                data: data.into(),
            }));
        }
    }
}

/// The stream's parameter sets as Annex B. Not `extra_data()`: parameters known from the SDP,
/// before SETUP chose Annex B framing, come as an `hvcC`/`avcC` record there.
fn annex_b_parameter_sets(p: &retina::codec::VideoParameters) -> Vec<u8> {
    let mut out = Vec::new();
    match p.codec_params() {
        VideoParametersCodec::H265 { vps, sps, pps } => {
            for nal in [vps, sps, pps] {
                push_annex_b(&mut out, nal);
            }
        }
        VideoParametersCodec::H264 { sps, pps } => {
            for nal in [sps, pps] {
                push_annex_b(&mut out, nal);
            }
        }
        _ => {}
    }
    out
}

fn fill_video_info(info: &mut StreamInfo, p: &retina::codec::VideoParameters) {
    info.resolution = Some(p.pixel_dimensions());
    info.rfc6381 = Some(p.rfc6381_codec().to_owned());
    if let Some((num, den)) = p.frame_rate() {
        if num > 0 && den > 0 {
            // VideoParameters::frame_rate is (time units per frame, time scale): fps = den / num.
            info.declared_fps
                .get_or_insert(f64::from(den) / f64::from(num));
        }
    }
}

impl std::fmt::Debug for RtspStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspStream")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

//! H.264 and H.265 decoding with FFmpeg's libavcodec (Debian's FFmpeg, through `ffmpeg-next`),
//! in software or, when configured and present, on a hardware decoder (VA-API, CUDA).
//! The only file that names FFmpeg's decoder.
//!
//! One [`VideoDecoder`] decodes one stream in order, or serves many cameras' keyframes one at a
//! time (each carries its parameter sets and references nothing). It owns a libavcodec context
//! per codec, made on first use. Pictures come out as tightly packed I420 whatever the decoder's
//! own format (full-range `yuvj420p`, 10-bit, 4:2:2, a hardware surface): anything else is
//! converted with libswscale.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime};

use ff::format::Pixel;
use ffmpeg_next as ff;

use super::frame::DecodedFrame;
use crate::codec::EncodedFrame;
use crate::codec::VideoCodec;
use crate::config::HwAccel;

/// Why an access unit produced no picture.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The decoder could not be created.
    #[error("cannot create the {codec} decoder: {message}")]
    Init {
        /// The codec.
        codec: VideoCodec,
        /// libavcodec's message.
        message: String,
    },
    /// The bitstream is corrupt or truncated.
    #[error("corrupt or truncated {codec} access unit ({len} bytes): {message}")]
    Corrupt {
        /// The codec.
        codec: VideoCodec,
        /// Size of the access unit.
        len: usize,
        /// The decoder's message.
        message: String,
    },
    /// The access unit was consumed but completed no picture (parameter sets only, or a
    /// picture the decoder holds back for reordering).
    #[error("the access unit ({len} bytes) completed no picture")]
    NoPicture {
        /// Size of the access unit.
        len: usize,
    },
}

/// What a picture needs from the access unit it was decoded from.
struct Pending {
    seq: i64,
    camera: usize,
    captured_at: SystemTime,
    received: Instant,
    pts_s: f64,
    keyframe: bool,
}

/// Most access units a decoder holds back before their pictures come out (reordering depth of
/// streams with B-frames); metadata of older ones is forgotten.
const MAX_PENDING: usize = 16;

/// A libswscale context, owned by one decoder.
struct Scaler(ff::software::scaling::Context);

// SAFETY: a libswscale context has no thread affinity; it is owned by one decoder, and a
// decoder is used by one thread at a time (`&mut self` on every call).
unsafe impl Send for Scaler {}

/// One libavcodec context with what it needs between calls.
struct Context {
    codec: VideoCodec,
    decoder: ff::decoder::Video,
    hardware: bool,
    pending: VecDeque<Pending>,
    /// Conversion to I420 for pictures in another format, kept while the format stays.
    scaler: Option<(Pixel, u32, u32, Scaler)>,
    next_seq: i64,
}

/// A decoder for H.264 and H.265 access units (Annex B, parameter sets in band).
///
/// A corrupt access unit is an error for that unit: the context is flushed and the next keyframe
/// decodes cleanly. A stream that changes resolution or codec keeps working.
#[derive(Default)]
pub struct VideoDecoder {
    hwaccel: HwAccel,
    context: Option<Context>,
}

/// Sets up libavcodec once per process (and keeps its log quiet: dumpwatch counts and reports
/// decode errors itself).
fn init_ffmpeg() -> Result<(), String> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        ff::init().map_err(|e| e.to_string())?;
        ff::util::log::set_level(ff::util::log::Level::Fatal);
        Ok(())
    })
    .clone()
}

impl VideoDecoder {
    /// A software decoder; checks at once that libavcodec has both decoders.
    pub fn new() -> Result<Self, DecodeError> {
        Self::with_hwaccel(HwAccel::None)
    }

    /// A decoder that uses `hwaccel` when its device can be opened (software otherwise, with one
    /// logged reason per process). Fails if libavcodec lacks the H.264 or H.265 decoder.
    pub fn with_hwaccel(hwaccel: HwAccel) -> Result<Self, DecodeError> {
        for codec in [VideoCodec::H264, VideoCodec::H265] {
            init_ffmpeg().map_err(|message| DecodeError::Init { codec, message })?;
            if ff::decoder::find(codec_id(codec)).is_none() {
                return Err(DecodeError::Init {
                    codec,
                    message:
                        "this FFmpeg build has no such decoder (install Debian's libavcodec59)"
                            .into(),
                });
            }
        }
        Ok(VideoDecoder {
            hwaccel,
            context: None,
        })
    }

    /// Whether the current context decodes on hardware.
    pub fn on_hardware(&self) -> bool {
        self.context.as_ref().is_some_and(|c| c.hardware)
    }

    /// Decodes one access unit of camera `camera` into a picture.
    ///
    /// A keyframe not part of a run (`!frame.all_frames`) is drained out at once, so a decoder
    /// shared by many cameras never holds one camera's picture back until another's comes.
    pub fn decode(
        &mut self,
        camera: usize,
        frame: &EncodedFrame,
    ) -> Result<DecodedFrame, DecodeError> {
        let codec = frame.codec;
        let len = frame.data.len();
        if self.context.as_ref().is_none_or(|c| c.codec != codec) {
            self.context = Some(Context::open(codec, self.hwaccel)?);
        }
        let ctx = self.context.as_mut().expect("context made above");
        let result = ctx.decode(camera, frame, !frame.all_frames);
        if let Err(DecodeError::Corrupt { .. }) = &result {
            // Drop whatever the bad unit left half-built; the next keyframe starts clean.
            ctx.decoder.flush();
            ctx.pending.clear();
        }
        result.map_err(|e| match e {
            DecodeError::Corrupt { message, .. } => DecodeError::Corrupt {
                codec,
                len,
                message,
            },
            other => other,
        })
    }
}

fn codec_id(codec: VideoCodec) -> ff::codec::Id {
    match codec {
        VideoCodec::H264 => ff::codec::Id::H264,
        VideoCodec::H265 => ff::codec::Id::HEVC,
    }
}

impl Context {
    fn open(codec: VideoCodec, hwaccel: HwAccel) -> Result<Context, DecodeError> {
        let init = |message: String| DecodeError::Init { codec, message };
        init_ffmpeg().map_err(init)?;
        let decoder_codec = ff::decoder::find(codec_id(codec))
            .ok_or_else(|| init("this FFmpeg build has no such decoder".into()))?;
        let mut context = ff::codec::Context::new_with_codec(decoder_codec);
        // dumpwatch runs its own decode threads; a picture must come out for the unit that
        // completes it (cameras send no B-frames; streams that do are reordered by pts).
        context.set_threading(ff::codec::threading::Config::count(1));
        context.set_flags(ff::codec::Flags::LOW_DELAY);
        let hardware = hardware::attach(&mut context, hwaccel);
        let decoder = context
            .decoder()
            .open_as(decoder_codec)
            .and_then(|o| o.video())
            .map_err(|e| init(e.to_string()))?;
        Ok(Context {
            codec,
            decoder,
            hardware,
            pending: VecDeque::new(),
            scaler: None,
            next_seq: 0,
        })
    }

    fn decode(
        &mut self,
        camera: usize,
        frame: &EncodedFrame,
        drain: bool,
    ) -> Result<DecodedFrame, DecodeError> {
        let len = frame.data.len();
        let codec = self.codec;
        let corrupt = |message: String| DecodeError::Corrupt {
            codec,
            len,
            message,
        };
        if drain {
            // A keyframe decoded alone starts from nothing: whatever another camera's keyframe
            // left (its reference picture, its POC) must not meet this one. H.265 CRA keyframes
            // do not reset the decoder themselves; two cameras' CRAs with the same POC in a row
            // are otherwise refused as a duplicate picture.
            self.decoder.flush();
            self.pending.clear();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut packet = ff::Packet::copy(&frame.data);
        packet.set_pts(Some(seq));
        packet.set_dts(Some(seq));
        if frame.keyframe {
            packet.set_flags(ff::codec::packet::Flags::KEY);
        }
        self.decoder
            .send_packet(&packet)
            .map_err(|e| corrupt(e.to_string()))?;
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            seq,
            camera,
            captured_at: frame.captured_at,
            received: frame.received,
            pts_s: frame.pts_s,
            keyframe: frame.keyframe,
        });
        let mut picture = ff::frame::Video::empty();
        let mut got = self.decoder.receive_frame(&mut picture);
        if drain && is_again(&got) {
            // Force the picture out, then make the context take packets again.
            let _ = self.decoder.send_eof();
            got = self.decoder.receive_frame(&mut picture);
            self.decoder.flush();
        }
        match got {
            Ok(()) => {}
            Err(e) if is_again(&got) || e == ff::Error::Eof => {
                return Err(DecodeError::NoPicture { len });
            }
            Err(e) => return Err(corrupt(e.to_string())),
        }
        let meta = self.take_pending(picture.pts(), seq);
        if drain {
            self.pending.clear();
        }
        // SAFETY: reading two plain fields of a frame libavcodec just filled.
        let (error_flags, frame_flags) = unsafe {
            let p = picture.as_ptr();
            ((*p).decode_error_flags, (*p).flags)
        };
        if error_flags != 0 || frame_flags & ff::ffi::AV_FRAME_FLAG_CORRUPT != 0 {
            return Err(corrupt(format!(
                "the picture has decode errors (flags {error_flags:#x}); concealed pictures are not analysed"
            )));
        }
        let picture = if hardware::is_surface(picture.format()) {
            hardware::download(&picture).map_err(corrupt)?
        } else {
            picture
        };
        self.convert_to_i420(&picture, meta)
            .ok_or_else(|| corrupt("the decoder returned inconsistent planes".into()))
    }

    /// The metadata of the unit a picture came from (matched by pts); units sent before it that
    /// never produced a picture are forgotten. Without a match (a decoder that lost the pts), the
    /// unit just sent.
    fn take_pending(&mut self, pts: Option<i64>, sent: i64) -> Pending {
        let want = pts.unwrap_or(sent);
        let at = self
            .pending
            .iter()
            .position(|p| p.seq == want)
            .or_else(|| self.pending.iter().position(|p| p.seq == sent))
            .expect("the unit just sent is pending");
        let meta = self.pending.remove(at).expect("index found above");
        self.pending.retain(|p| p.seq > meta.seq);
        meta
    }

    fn convert_to_i420(
        &mut self,
        picture: &ff::frame::Video,
        meta: Pending,
    ) -> Option<DecodedFrame> {
        let (w, h) = (picture.width(), picture.height());
        let converted;
        let yuv = match picture.format() {
            Pixel::YUV420P | Pixel::YUVJ420P => picture,
            other => {
                let reuse = matches!(&self.scaler, Some((f, sw, sh, _)) if *f == other && *sw == w && *sh == h);
                if !reuse {
                    let scaler = ff::software::scaling::Context::get(
                        other,
                        w,
                        h,
                        Pixel::YUV420P,
                        w,
                        h,
                        ff::software::scaling::Flags::FAST_BILINEAR,
                    )
                    .ok()?;
                    self.scaler = Some((other, w, h, Scaler(scaler)));
                }
                let (_, _, _, scaler) = self.scaler.as_mut()?;
                let mut out = ff::frame::Video::empty();
                scaler.0.run(picture, &mut out).ok()?;
                converted = out;
                &converted
            }
        };
        DecodedFrame::from_planes(
            meta.camera,
            meta.captured_at,
            meta.received,
            meta.pts_s,
            meta.keyframe,
            (w, h),
            (yuv.data(0), yuv.data(1), yuv.data(2)),
            (yuv.stride(0), yuv.stride(1), yuv.stride(2)),
        )
    }
}

fn is_again(result: &Result<(), ff::Error>) -> bool {
    matches!(result, Err(ff::Error::Other { errno }) if *errno == libc::EAGAIN)
}

/// Hardware decoding through libavcodec's hwaccel: one device per kind per process, opened on
/// first use; when it cannot be opened, software decoding with one logged reason.
mod hardware {
    use std::sync::OnceLock;

    use ff::ffi;
    use ff::format::Pixel;
    use ffmpeg_next as ff;
    use tracing::{info, warn};

    use crate::config::HwAccel;

    /// A hardware device context shared by every decoder of the process.
    struct Device(*mut ffi::AVBufferRef);
    // SAFETY: an AVBufferRef to a device context is reference-counted atomically, and libavcodec
    // takes its own reference for each decoder; the pointer itself is never written after creation.
    unsafe impl Send for Device {}
    unsafe impl Sync for Device {}

    fn device_type(hwaccel: HwAccel) -> Option<ffi::AVHWDeviceType> {
        match hwaccel {
            HwAccel::None => None,
            HwAccel::Vaapi => Some(ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI),
            HwAccel::Cuda => Some(ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA),
        }
    }

    /// The process's device for `hwaccel`, or why there is none (said once, in the log).
    fn device(hwaccel: HwAccel) -> Option<&'static Device> {
        static VAAPI: OnceLock<Option<Device>> = OnceLock::new();
        static CUDA: OnceLock<Option<Device>> = OnceLock::new();
        let cell = match hwaccel {
            HwAccel::None => return None,
            HwAccel::Vaapi => &VAAPI,
            HwAccel::Cuda => &CUDA,
        };
        cell.get_or_init(|| match open(hwaccel) {
            Ok(device) => {
                info!(hwaccel = hwaccel.name(), "decoding on the hardware decoder");
                Some(device)
            }
            Err(reason) => {
                warn!(
                    hwaccel = hwaccel.name(),
                    %reason,
                    "hardware decoding unavailable: decoding in software (set decode.hwaccel = \"none\" to silence this)"
                );
                None
            }
        })
        .as_ref()
    }

    /// Opens the default device of `hwaccel`'s kind.
    fn open(hwaccel: HwAccel) -> Result<Device, String> {
        let kind = device_type(hwaccel).ok_or("no hardware decoder configured")?;
        let mut ctx: *mut ffi::AVBufferRef = std::ptr::null_mut();
        // SAFETY: av_hwdevice_ctx_create writes a new reference into `ctx` on success only.
        let rc = unsafe {
            ffi::av_hwdevice_ctx_create(&mut ctx, kind, std::ptr::null(), std::ptr::null_mut(), 0)
        };
        if rc < 0 || ctx.is_null() {
            return Err(format!(
                "cannot open the {} device: {}{}",
                hwaccel.name(),
                ff::Error::from(rc),
                missing_device_hint(hwaccel)
            ));
        }
        Ok(Device(ctx))
    }

    /// What is missing on this machine for `hwaccel`, as far as the device files tell.
    fn missing_device_hint(hwaccel: HwAccel) -> &'static str {
        let any_file = |dir: &str, prefix: &str| {
            std::fs::read_dir(dir).is_ok_and(|d| {
                d.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
            })
        };
        match hwaccel {
            HwAccel::Vaapi if !any_file("/dev/dri", "renderD") => {
                "; this machine has no GPU render node (/dev/dri/renderD*)"
            }
            HwAccel::Vaapi => {
                "; is the VA-API driver for this GPU installed (intel-media-va-driver, mesa-va-drivers)?"
            }
            HwAccel::Cuda if !any_file("/dev", "nvidia") => {
                "; this machine has no NVIDIA device (/dev/nvidia*)"
            }
            HwAccel::Cuda => "; is the NVIDIA driver (libcuda.so.1) installed?",
            HwAccel::None => "",
        }
    }

    impl Drop for Device {
        fn drop(&mut self) {
            // SAFETY: the reference was made by av_hwdevice_ctx_create and is released once.
            unsafe { ffi::av_buffer_unref(&mut self.0) };
        }
    }

    /// Whether `hwaccel`'s device opens on this machine (for `check-config`), or why not.
    pub fn available(hwaccel: HwAccel) -> Result<(), String> {
        match hwaccel {
            HwAccel::None => Ok(()),
            _ => open(hwaccel).map(drop),
        }
    }

    /// Gives `context` the process's device for `hwaccel`; false (software) without one.
    pub(super) fn attach(context: &mut ff::codec::Context, hwaccel: HwAccel) -> bool {
        let Some(device) = device(hwaccel) else {
            return false;
        };
        // SAFETY: the context is not open yet; it takes its own reference to the device, which
        // libavcodec's default get_format then uses for the hwaccel pixel format.
        unsafe {
            let r = ffi::av_buffer_ref(device.0);
            if r.is_null() {
                return false;
            }
            (*context.as_mut_ptr()).hw_device_ctx = r;
        }
        true
    }

    /// Whether `format` is a picture left on the device.
    pub(super) fn is_surface(format: Pixel) -> bool {
        matches!(format, Pixel::VAAPI | Pixel::CUDA)
    }

    /// Copies a device picture to memory (NV12 or similar; converted to I420 afterwards).
    pub(super) fn download(picture: &ff::frame::Video) -> Result<ff::frame::Video, String> {
        let mut out = ff::frame::Video::empty();
        // SAFETY: both frames are valid; av_hwframe_transfer_data allocates `out`'s buffers.
        let rc = unsafe { ffi::av_hwframe_transfer_data(out.as_mut_ptr(), picture.as_ptr(), 0) };
        if rc < 0 {
            return Err(format!(
                "cannot copy the picture from the hardware decoder: {}",
                ff::Error::from(rc)
            ));
        }
        Ok(out)
    }
}

pub use hardware::available as hwaccel_available;

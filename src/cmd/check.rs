//! `dumpwatch check-config`: checks the configuration (every problem with its path), the decoder,
//! the users file; with `--probe` also connects to every enabled camera and prints what it sends
//! (codec and profile, resolution), or why it cannot be watched.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;

use dumpwatch::codec::profile_name;
use dumpwatch::config::{CameraConfig, Config, credentials_from_env};
use dumpwatch::ingest::{ConnectOptions, IngestError, RtspStream};

/// Arguments of `dumpwatch check-config`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Service file (TOML). Without it, embedded defaults are used.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Cameras file, overriding `cameras_file` of the service file.
    #[arg(long)]
    cameras: Option<PathBuf>,
    /// Also connect to every enabled camera and print its codec, profile and resolution (or
    /// why it cannot be watched); exits 3 if any cannot.
    #[arg(long)]
    probe: bool,
    /// Limit of each RTSP step of `--probe`, seconds.
    #[arg(long, default_value_t = 10.0)]
    probe_timeout: f64,
}

/// Runs `check-config`: exit 0 when the service can start with this configuration, 2 when it
/// cannot (each problem printed), 3 when `--probe` found cameras that cannot be watched.
pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let c = match Config::load(args.config.as_deref(), args.cameras.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    println!(
        "configuration OK: {} camera(s), {} enabled, {} zone(s)",
        c.cameras.len(),
        c.cameras.iter().filter(|c| c.enabled).count(),
        c.cameras.iter().map(|c| c.zones.len()).sum::<usize>()
    );
    if let Some(path) = &c.service.api.users_file {
        match dumpwatch::accounts::UsersFile::load(path) {
            Ok(f) => println!("api.users_file: {} account(s)", f.users.len()),
            Err(e) => {
                eprintln!("api.users_file: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let hwaccel = c.service.decode.hwaccel;
    match dumpwatch::decode::VideoDecoder::new() {
        Ok(_) => println!("decoder: libavcodec, H.264 and H.265"),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    }
    match dumpwatch::decode::hwaccel_available(hwaccel) {
        Ok(()) => println!("decode.hwaccel = {:?}: ok", hwaccel.name()),
        Err(reason) => println!(
            "decode.hwaccel = {:?}: unavailable here ({reason}); the service will decode in software",
            hwaccel.name()
        ),
    }
    if args.probe {
        let timeout = Duration::from_secs_f64(args.probe_timeout.max(0.1));
        let bad = probe_cameras(&c, timeout).await;
        if bad > 0 {
            println!("{bad} camera(s) cannot be watched");
            return Ok(ExitCode::from(3));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Cameras connected to at once.
const CONCURRENCY: usize = 8;

/// What one camera answered.
struct Answer {
    id: String,
    result: Result<String, String>,
}

/// Connects to one stream of `cam` and describes what it sends.
async fn describe(
    cam: &CameraConfig,
    cfg: &Config,
    url: &str,
    timeout: Duration,
) -> Result<String, String> {
    let url = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let opts = ConnectOptions {
        url,
        credentials: credentials_from_env(cam),
        transport: cam.transport.unwrap_or(cfg.service.ingest.transport),
        step_timeout: timeout,
    };
    match RtspStream::connect(&opts, None).await {
        Ok(stream) => {
            let info = stream.info();
            let profile = info
                .rfc6381
                .as_deref()
                .and_then(profile_name)
                .unwrap_or("profile unknown");
            let size = info
                .resolution
                .map_or("size unknown".to_owned(), |(w, h)| format!("{w}x{h}"));
            Ok(format!(
                "{} {profile} ({}), {size}, {}",
                info.codec.name().to_uppercase(),
                info.rfc6381.as_deref().unwrap_or("no codec string"),
                info.transport
            ))
        }
        Err(e @ IngestError::UnsupportedCodec { .. }) => Err(e.to_string()),
        Err(e) => Err(format!("cannot connect: {e}")),
    }
}

/// Probes the camera's main stream, and its analysis sub-stream when it has one.
async fn probe_one(cam: &CameraConfig, cfg: &Config, timeout: Duration) -> Answer {
    let main = describe(cam, cfg, &cam.url, timeout).await;
    let result = match &cam.analysis_url {
        None => main,
        Some(sub) => match (main, describe(cam, cfg, sub, timeout).await) {
            (Ok(m), Ok(a)) => Ok(format!("main {m}; analysis {a}")),
            (Err(e), _) => Err(format!("main stream: {e}")),
            (_, Err(e)) => Err(format!("analysis_url: {e}")),
        },
    };
    Answer {
        id: cam.id.clone(),
        result,
    }
}

/// Probes every enabled camera; prints one line each, in the file's order. Returns how many
/// cannot be watched.
pub async fn probe_cameras(cfg: &Config, timeout: Duration) -> usize {
    let cameras: Vec<&CameraConfig> = cfg.cameras.iter().filter(|c| c.enabled).collect();
    println!(
        "probing {} enabled camera(s), {CONCURRENCY} at a time:",
        cameras.len()
    );
    let answers: Vec<Answer> = futures::stream::iter(cameras)
        .map(|cam| probe_one(cam, cfg, timeout))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let width = answers.iter().map(|a| a.id.len()).max().unwrap_or(0);
    let mut bad = 0;
    for a in &answers {
        match &a.result {
            Ok(what) => println!("  {:width$}  ok     {what}", a.id),
            Err(why) => {
                bad += 1;
                println!("  {:width$}  ERROR  {why}", a.id);
            }
        }
    }
    bad
}

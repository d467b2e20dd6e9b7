//! The `dumpwatch` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use dumpwatch::config::{Config, ConfigError, Credentials, Transport};
use dumpwatch::ingest::ConnectOptions;
use dumpwatch::redact::Redacted;

mod cmd;

/// Watches city cameras for illegal dumping.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Run {
        /// Service file (TOML). Without it, embedded defaults are used.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Cameras file, overriding `cameras_file` of the service file.
        #[arg(long)]
        cameras: Option<PathBuf>,
        /// HTTP listen address, overriding `listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Watch only part of the cameras: INDEX/COUNT keeps those whose id hashes (SHA-256) to
        /// INDEX modulo COUNT, so COUNT instances with 0..COUNT share every camera once.
        #[arg(long, env = "DUMPWATCH_SHARD", default_value = "0/1")]
        shard: dumpwatch::shard::Shard,
    },
    /// Check the configuration and print every problem with its path.
    CheckConfig(cmd::check::CheckArgs),
    /// Add, remove or list the operations center's accounts (api.users_file).
    Users(cmd::users::UsersArgs),
    /// Run the detector on image files: print each detection and write annotated JPEGs.
    Detect {
        /// Image files (JPEG, PNG).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Write annotated copies here (created if missing).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Minimum score for every class (overrides model.confidence and model.class_confidence).
        #[arg(long)]
        conf: Option<f32>,
        /// Service file whose [model] section to use. Without it, embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print the detections as JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the pipeline (decode, detect, analyze) over a recorded H.264 or H.265 clip (MP4, MKV,
    /// TS) as fast as the CPU allows, with the clip's timestamps as the clock; print the events
    /// and write their pictures.
    Replay {
        /// The clip (MP4, Matroska or MPEG-TS with an H.264 or H.265 track).
        clip: PathBuf,
        /// Service file whose [model] and [analyze] sections to use. Without it, embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Use this camera's zones, masks and [cameras.analyze] overrides from the cameras file.
        #[arg(long)]
        camera: Option<String>,
        /// A watched zone, normalised: "[[0.1, 0.5], [0.9, 0.5], [0.9, 1], [0.1, 1]]" (repeatable;
        /// replaces the camera's zones). Without zones the whole frame is watched.
        #[arg(long)]
        zone: Vec<String>,
        /// Override an [analyze] setting: --set dwell_s=20 (repeatable).
        #[arg(long)]
        set: Vec<String>,
        /// Directory for the evidence pictures (a subdirectory per clip).
        #[arg(long, default_value = "replay-out")]
        out: PathBuf,
        /// Print the events as JSON lines.
        #[arg(long)]
        json: bool,
        /// Print, whenever it changes, what the analyzer follows and the detections of that picture.
        #[arg(long)]
        trace: bool,
        /// Reproduce a loaded box: at most this many detections per second (as `eval
        /// --detect-rate`).
        #[arg(long, value_name = "PER_S")]
        detect_rate: Option<f64>,
    },
    /// Score the pipeline on a labelled dataset (labels.toml + H.264 or H.265 clips): precision, recall,
    /// F1, time to alert and false alarms per hour; --sweep tries a range of one setting.
    Eval {
        /// Dataset directory with labels.toml.
        #[arg(long)]
        dataset: PathBuf,
        /// Service file whose [model] and [analyze] sections to use. Without it, embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override an [analyze] setting: --set dwell_s=20 (repeatable).
        #[arg(long)]
        set: Vec<String>,
        /// Run once per value of an [analyze] setting: --sweep dwell_s=10:40:10 (start:end:step).
        #[arg(long)]
        sweep: Option<String>,
        /// Write the results (per clip and totals) as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// With --sweep: write a precision / recall / F1 plot (PNG).
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Clips replayed at once, one detector session each. Default: model.sessions.
        #[arg(long)]
        jobs: Option<usize>,
        /// Reproduce a loaded box: at most this many detections per second per camera (what
        /// the live scheduler granted each busy camera: see
        /// `dumpwatch_analysis_gap_seconds{load="busy"}`); the pictures the sampler analyses
        /// beyond that (at `active_fps`) are seen by the background channel alone, as live.
        #[arg(long, value_name = "PER_S")]
        detect_rate: Option<f64>,
    },
    /// Write the incidents reviewed in the operations center as an evaluation dataset:
    /// confirmed ones with a dumping event, dismissed ones (false positives) without, each with
    /// its evidence clip and its camera's zone. Then `dumpwatch eval --dataset OUT`.
    ExportFeedback {
        /// Service file (its storage_dir and cameras file). Without it, embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Cameras file, overriding `cameras_file` of the service file.
        #[arg(long)]
        cameras: Option<PathBuf>,
        /// New dataset directory (labels.toml and clips/).
        #[arg(long)]
        out: PathBuf,
        /// Only incidents raised at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
    },
    /// A reference city-system endpoint for the demo and tests: verifies signatures, stores bodies
    /// and snapshots, keeps each Idempotency-Key once; can be told to fail on purpose.
    Receiver {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
        /// Directory for bodies/, snapshots/ and received.jsonl (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Environment variable with the HMAC secret; when set, unsigned or wrongly signed
        /// requests get 401.
        #[arg(long)]
        secret_env: Option<String>,
        /// Seconds a signature's timestamp may be from now; older requests (replays) get 401.
        #[arg(long, default_value_t = 300)]
        signature_tolerance_s: u64,
        /// Share of requests (0..1) answered with --fail-status.
        #[arg(long, default_value_t = 0.0)]
        fail_share: f64,
        /// Answer the first N requests with --fail-status.
        #[arg(long, default_value_t = 0)]
        fail_first: u64,
        /// Status of the injected failures (500, 503, 429, 400, ...).
        #[arg(long, default_value_t = 500)]
        fail_status: u16,
        /// Retry-After seconds sent with injected failures.
        #[arg(long)]
        retry_after: Option<u64>,
        /// Milliseconds added before answering each request.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
    /// Connect to one camera: print codec, resolution, frame rate, GOP and transport; save the first keyframe.
    Probe {
        /// RTSP URL; `user:password@` in it is used for authentication and never printed.
        url: String,
        /// Write the first decoded keyframe here as JPEG.
        #[arg(long)]
        out: Option<PathBuf>,
        /// RTP transport.
        #[arg(long, default_value = "tcp")]
        transport: Transport,
        /// Limit for each RTSP step, in seconds.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// How long to watch the stream for GOP and frame-rate measurement, in seconds.
        #[arg(long, default_value_t = 12.0)]
        watch: f64,
    },
}

fn main() -> ExitCode {
    dumpwatch::allocator::bound_malloc();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,retina=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::CheckConfig(args) => cmd::check::run(args).await,
        Command::Users(args) => cmd::users::run(args),
        Command::Run {
            config,
            cameras,
            listen,
            shard,
        } => {
            dumpwatch::allocator::start_trimming(std::time::Duration::from_secs(1));
            // Listen for SIGHUP before anything else: its default action ends the process, and
            // an operator's reload sent while the model loads must not stop the service (it is
            // applied once the service runs).
            let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
            // The same files, read again on SIGHUP or POST /api/v1/config/reload.
            let load = move || {
                let mut cfg = Config::load(config.as_deref(), cameras.as_deref())?;
                if let Some(l) = listen {
                    cfg.service.listen = l;
                }
                if shard != dumpwatch::shard::Shard::ALL {
                    let before = cfg.cameras.len();
                    cfg.cameras.retain(|c| shard.owns(&c.id));
                    tracing::info!(%shard, cameras = cfg.cameras.len(), of = before, "shard: watching part of the cameras");
                }
                Ok(cfg)
            };
            let cfg = match load() {
                Ok(c) => c,
                Err(e) => {
                    print_config_error(&e);
                    return Ok(ExitCode::from(2));
                }
            };
            let listener = tokio::net::TcpListener::bind(cfg.service.listen)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on {} (listen / --listen)",
                        cfg.service.listen
                    )
                })?;
            eprintln!("dumpwatch: serving http://{}", listener.local_addr()?);
            dumpwatch::app::run_with_reload(
                cfg,
                Some(std::sync::Arc::new(load)),
                listener,
                shutdown_signal(),
                |handles| {
                    tokio::spawn(reload_on_sighup(hup, handles.reload));
                },
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ExportFeedback {
            config,
            cameras,
            out,
            since,
        } => {
            let cfg = match Config::load(config.as_deref(), cameras.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    print_config_error(&e);
                    return Ok(ExitCode::from(2));
                }
            };
            let since = since
                .map(|t| {
                    humantime::parse_rfc3339_weak(&t)
                        .map(dumpwatch::clock::unix_seconds)
                        .with_context(|| format!("--since {t:?}: not an RFC 3339 time"))
                })
                .transpose()?;
            let dir = &cfg.service.storage_dir;
            if !dir.join(dumpwatch::store::DB_FILE).exists() {
                bail!(
                    "{}: no incident store here (storage_dir); run the service first or point --config at its service file",
                    dir.display()
                );
            }
            let store = dumpwatch::store::Store::open(dir)?;
            let summary =
                dumpwatch::eval::feedback::export_feedback(&store, dir, &cfg.cameras, &out, since)?;
            for (id, why) in &summary.skipped {
                eprintln!("skipped incident {id}: {why}");
            }
            println!(
                "wrote {}: {} confirmed, {} dismissed, {} skipped; score it with `dumpwatch eval --dataset {}`",
                out.join("labels.toml").display(),
                summary.confirmed,
                summary.dismissed,
                summary.skipped.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            clip,
            config,
            camera,
            zone,
            set,
            out,
            json,
            trace,
            detect_rate,
        } => {
            let args = cmd::replay::ReplayArgs {
                clip,
                config,
                camera,
                zones: zone,
                sets: set,
                out,
                json,
                trace,
                detect_rate,
            };
            tokio::task::spawn_blocking(move || cmd::replay::run(args)).await??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Eval {
            dataset,
            config,
            set,
            sweep,
            json,
            plot,
            jobs,
            detect_rate,
        } => {
            let args = cmd::eval::EvalArgs {
                dataset,
                config,
                sets: set,
                sweep,
                json,
                plot,
                jobs,
                detect_rate,
            };
            tokio::task::spawn_blocking(move || cmd::eval::run(args)).await??;
            Ok(ExitCode::SUCCESS)
        }
        Command::Receiver {
            listen,
            dir,
            secret_env,
            signature_tolerance_s,
            fail_share,
            fail_first,
            fail_status,
            retry_after,
            latency_ms,
        } => {
            if !(0.0..=1.0).contains(&fail_share) {
                bail!("--fail-share must be between 0 and 1, got {fail_share}");
            }
            if !(100..=599).contains(&fail_status) {
                bail!("--fail-status must be an HTTP status (100..599), got {fail_status}");
            }
            let secret = match &secret_env {
                Some(name) => Some(
                    std::env::var(name)
                        .with_context(|| {
                            format!("--secret-env: environment variable {name} is not set")
                        })?
                        .into_bytes(),
                ),
                None => None,
            };
            let settings = dumpwatch::receiver::ReceiverSettings {
                dir,
                secret,
                signature_tolerance: Duration::from_secs(signature_tolerance_s),
                fail_share,
                fail_first,
                fail_status,
                retry_after_s: retry_after,
                latency: Duration::from_millis(latency_ms),
            };
            dumpwatch::receiver::serve(listen, settings, shutdown_signal())
                .await
                .with_context(|| format!("receiver on {listen}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Detect {
            images,
            out,
            conf,
            config,
            json,
        } => detect_images(&images, out.as_deref(), conf, config.as_deref(), json),
        Command::Probe {
            url,
            out,
            transport,
            timeout,
            watch,
        } => {
            let mut url = url::Url::parse(&url)
                .with_context(|| "the URL is not valid (expected rtsp://host[:port]/path)")?;
            if url.scheme() != "rtsp" {
                bail!("scheme {:?} is not supported: use rtsp://", url.scheme());
            }
            let credentials = (!url.username().is_empty()).then(|| Credentials {
                username: percent_encoding::percent_decode_str(url.username())
                    .decode_utf8_lossy()
                    .into_owned(),
                password: percent_encoding::percent_decode_str(url.password().unwrap_or(""))
                    .decode_utf8_lossy()
                    .into_owned(),
            });
            let _ = url.set_username("");
            let _ = url.set_password(None);
            let opts = ConnectOptions {
                url,
                credentials,
                transport,
                step_timeout: Duration::from_secs_f64(timeout),
            };
            println!("probing {} over {transport}", Redacted(&opts.url));
            let report =
                dumpwatch::probe::probe(&opts, Duration::from_secs_f64(watch), out.as_deref())
                    .await
                    .with_context(|| format!("probe of {} failed", Redacted(&opts.url)))?;
            let info = &report.info;
            let profile = info
                .rfc6381
                .as_deref()
                .and_then(dumpwatch::codec::profile_name)
                .unwrap_or("profile unknown");
            println!(
                "codec:        {} {profile} ({})",
                info.codec.name().to_uppercase(),
                info.rfc6381.as_deref().unwrap_or("no codec string")
            );
            println!(
                "resolution:   {}x{}",
                report.decoded_size.0, report.decoded_size.1
            );
            match (report.measured_fps, info.declared_fps) {
                (Some(m), Some(d)) => {
                    println!("frame rate:   {m:.2} fps measured ({d:.2} declared)")
                }
                (Some(m), None) => println!("frame rate:   {m:.2} fps measured"),
                (None, Some(d)) => println!("frame rate:   {d:.2} fps declared"),
                (None, None) => println!("frame rate:   unknown"),
            }
            match (report.gop_frames, report.gop_seconds) {
                (Some(f), Some(s)) => println!("GOP:          {f} frames ({s:.2} s)"),
                _ => println!("GOP:          longer than the watch time ({watch} s)"),
            }
            println!("transport:    {}", info.transport);
            println!(
                "joined:       {} frame(s) before the first keyframe",
                report.frames_before_keyframe
            );
            println!(
                "first picture after {:.0} ms",
                report.time_to_first_picture.as_secs_f64() * 1e3
            );
            if let Some(out) = out {
                println!("wrote {}", out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn detect_images(
    images: &[PathBuf],
    out: Option<&std::path::Path>,
    conf: Option<f32>,
    config: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use dumpwatch::annotate::{class_colour, draw_box_with_label};
    use dumpwatch::detect::{Detector, PostprocessConfig, postprocess_config};
    let mut svc = dumpwatch::config::ServiceConfig::load(config)?;
    // The same checks as `run`, for the settings this command uses.
    let only_service = dumpwatch::config::Config {
        service: svc.clone(),
        cameras: vec![],
    };
    if let Err(e) = dumpwatch::config::validate(&only_service, &|n| std::env::var(n).ok()) {
        print_config_error(&e);
        return Ok(ExitCode::from(2));
    }
    if let Some(c) = conf {
        if !(0.0..=1.0).contains(&c) {
            bail!("--conf {c} is out of range: must be between 0 and 1");
        }
        svc.model.confidence = c;
        svc.model.class_confidence.clear();
    }
    svc.model.sessions = 1;
    let mut detector = Detector::load(&svc.model)?;
    let post: PostprocessConfig = postprocess_config(&svc.model, detector.info())?;
    detector.set_postprocess(post);
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create --out directory {}", dir.display()))?;
    }
    let mut failed = 0;
    for path in images {
        let picture = match image::open(path) {
            Ok(p) => p.to_rgb8(),
            Err(e) => {
                eprintln!("{}: cannot read the image: {e}", path.display());
                failed += 1;
                continue;
            }
        };
        let detected = match detector.detect_rgb(&picture, &[]) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                failed += 1;
                continue;
            }
        };
        let info = detector.info().clone();
        if json {
            for d in &detected.detections {
                println!(
                    "{}",
                    serde_json::json!({ "image": path.display().to_string(), "class": info.class_name(d.class_id),
                        "class_id": d.class_id, "score": d.score, "bbox": [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2] })
                );
            }
        } else {
            let t = &detected.timings;
            println!(
                "{}: {}x{}, {} detection(s) (preprocess {:.1} ms, inference {:.1} ms, postprocess {:.1} ms)",
                path.display(),
                picture.width(),
                picture.height(),
                detected.detections.len(),
                t.preprocess.as_secs_f64() * 1e3,
                t.inference.as_secs_f64() * 1e3,
                t.postprocess.as_secs_f64() * 1e3
            );
            for d in &detected.detections {
                let b = &d.bbox;
                println!(
                    "  {:<14} {:.3}  [{:.0}, {:.0}, {:.0}, {:.0}]",
                    info.class_name(d.class_id),
                    d.score,
                    b.x1,
                    b.y1,
                    b.x2,
                    b.y2
                );
            }
        }
        if let Some(dir) = out {
            let mut annotated = picture;
            for d in &detected.detections {
                let label = format!("{} {:.2}", info.class_name(d.class_id), d.score);
                draw_box_with_label(
                    &mut annotated,
                    (d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2),
                    &label,
                    class_colour(d.class_id),
                );
            }
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into());
            let dest = dir.join(format!("{name}.jpg"));
            let bytes = dumpwatch::api::encode_jpeg(&annotated, 90)?;
            std::fs::write(&dest, bytes)
                .with_context(|| format!("cannot write {}", dest.display()))?;
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_config_error(e: &ConfigError) {
    eprintln!("{e}");
}

/// Reloads the configuration at every SIGHUP received on `hup` (the outcome is logged); one
/// received before the service ran is applied at once.
async fn reload_on_sighup(
    hup: std::io::Result<tokio::signal::unix::Signal>,
    reload: dumpwatch::supervisor::ReloadHandle,
) {
    let Ok(mut hup) = hup else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /api/v1/config/reload");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        match reload.reload().await {
            Ok(report) => tracing::info!(added = ?report.added, removed = ?report.removed,
                reconnected = ?report.reconnected, changed = ?report.changed,
                delivery_changed = report.delivery_changed, restart_needed = ?report.restart_needed,
                "configuration reloaded"),
            Err(e) => tracing::error!("reload refused, the running configuration stays: {e}"),
        }
    }
}

/// Completes at the first SIGINT or SIGTERM; a second one exits at once.
async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!("signal received: shutting down (send again to exit at once)");
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("dumpwatch: second signal, exiting now");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

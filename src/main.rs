//! The `dumpwatch` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use dumpwatch::config::{Config, ConfigError, Credentials, Transport};
use dumpwatch::ingest::ConnectOptions;
use dumpwatch::redact::Redacted;

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
    },
    /// Check the configuration and print every problem with its path.
    CheckConfig {
        /// Service file (TOML). Without it, embedded defaults are used.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Cameras file, overriding `cameras_file` of the service file.
        #[arg(long)]
        cameras: Option<PathBuf>,
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,retina=warn".into()),
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
        Command::CheckConfig { config, cameras } => match Config::load(config.as_deref(), cameras.as_deref()) {
            Ok(c) => {
                println!(
                    "configuration OK: {} camera(s), {} enabled, {} zone(s)",
                    c.cameras.len(),
                    c.cameras.iter().filter(|c| c.enabled).count(),
                    c.cameras.iter().map(|c| c.zones.len()).sum::<usize>()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                print_config_error(&e);
                Ok(ExitCode::from(2))
            }
        },
        Command::Run { config, cameras, listen } => {
            let mut cfg = match Config::load(config.as_deref(), cameras.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    print_config_error(&e);
                    return Ok(ExitCode::from(2));
                }
            };
            if let Some(l) = listen {
                cfg.service.listen = l;
            }
            let listener = tokio::net::TcpListener::bind(cfg.service.listen)
                .await
                .with_context(|| format!("cannot listen on {} (listen / --listen)", cfg.service.listen))?;
            eprintln!("dumpwatch: serving http://{}", listener.local_addr()?);
            dumpwatch::app::run(cfg, listener, shutdown_signal(), |_| {}).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe { url, out, transport, timeout, watch } => {
            let mut url = url::Url::parse(&url).with_context(|| "the URL is not valid (expected rtsp://host[:port]/path)")?;
            if url.scheme() != "rtsp" {
                bail!("scheme {:?} is not supported: use rtsp://", url.scheme());
            }
            let credentials = (!url.username().is_empty()).then(|| Credentials {
                username: percent_decode(url.username()),
                password: percent_decode(url.password().unwrap_or("")),
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
            let report = dumpwatch::probe::probe(&opts, Duration::from_secs_f64(watch), out.as_deref())
                .await
                .with_context(|| format!("probe of {} failed", Redacted(&opts.url)))?;
            let info = &report.info;
            println!("codec:        {} ({})", info.codec, info.rfc6381.as_deref().unwrap_or("profile unknown"));
            println!("resolution:   {}x{}", report.decoded_size.0, report.decoded_size.1);
            match (report.measured_fps, info.declared_fps) {
                (Some(m), Some(d)) => println!("frame rate:   {m:.2} fps measured ({d:.2} declared)"),
                (Some(m), None) => println!("frame rate:   {m:.2} fps measured"),
                (None, Some(d)) => println!("frame rate:   {d:.2} fps declared"),
                (None, None) => println!("frame rate:   unknown"),
            }
            match (report.gop_frames, report.gop_seconds) {
                (Some(f), Some(s)) => println!("GOP:          {f} frames ({s:.2} s)"),
                _ => println!("GOP:          longer than the watch time ({watch} s)"),
            }
            println!("transport:    {}", info.transport);
            println!("joined:       {} frame(s) before the first keyframe", report.frames_before_keyframe);
            println!("first picture after {:.0} ms", report.time_to_first_picture.as_secs_f64() * 1e3);
            if let Some(out) = out {
                println!("wrote {}", out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_config_error(e: &ConfigError) {
    eprintln!("{e}");
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

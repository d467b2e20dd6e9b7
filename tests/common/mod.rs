//! Shared test harness: real media made by ffmpeg, a real GStreamer RTSP server on 127.0.0.1,
//! and the real service run in-process on port 0.
#![allow(dead_code)]

pub mod incidents;
pub mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use dumpwatch::app::Handles;
use dumpwatch::config::{CameraConfig, Config, ServiceConfig};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An H.264 test file made by `scripts/make_media.sh` (cached under target/).
pub fn media(name: &str) -> PathBuf {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    let _guard = LOCK
        .get_or_init(|| Mutex::new(()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("media");
    let ext = if name.ends_with("_h265") {
        "h265"
    } else {
        "h264"
    };
    let path = dir.join(format!("{name}.{ext}"));
    if !path.exists() {
        let status = Command::new(root().join("scripts/make_media.sh"))
            .arg(&dir)
            .arg(name)
            .status()
            .expect("running scripts/make_media.sh (needs ffmpeg: run scripts/setup.sh)");
        assert!(status.success(), "make_media.sh {name} failed");
    }
    path
}

/// One run of `scripts/rtsp_server.py`.
pub struct RtspServer {
    child: Option<Child>,
    args: Vec<String>,
    /// The TCP port it listens on.
    pub port: u16,
}

impl RtspServer {
    /// Starts a server on a free port with the given arguments (`--h264 name=file`, ...).
    pub fn start(args: &[&str]) -> RtspServer {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (child, port) = spawn_server(&args, 0);
        RtspServer {
            child: Some(child),
            args,
            port,
        }
    }

    /// `rtsp://127.0.0.1:PORT/path`.
    /// A server with one path per name, each looping the same H.264 file.
    pub fn looping(file: &Path, names: &[&str]) -> RtspServer {
        let specs: Vec<String> = names
            .iter()
            .map(|n| format!("{n}={}", file.display()))
            .collect();
        let args: Vec<&str> = specs.iter().flat_map(|s| ["--h264", s.as_str()]).collect();
        RtspServer::start(&args)
    }

    pub fn url(&self, path: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{path}", self.port)
    }

    /// Kills the server (SIGKILL), as a crashed camera would disappear.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The port may linger briefly; retry until it binds.
            match try_spawn_server(&self.args, self.port) {
                Ok((child, _)) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("restart: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot restart the RTSP server on port {}: {e}", self.port),
            }
        }
    }

    /// Sends a signal to the server process (`STOP` freezes it, `CONT` resumes).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("server running").id();
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(c.id().to_string())
                .status();
        }
        self.kill();
    }
}

fn spawn_server(args: &[String], port: u16) -> (Child, u16) {
    try_spawn_server(args, port).unwrap_or_else(|e| panic!("{e}"))
}

fn try_spawn_server(args: &[String], port: u16) -> Result<(Child, u16), String> {
    let mut child = Command::new("/usr/bin/python3")
        .arg(root().join("scripts/rtsp_server.py"))
        .arg("--port")
        .arg(port.to_string())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start /usr/bin/python3 scripts/rtsp_server.py (run scripts/setup.sh): {e}"
            )
        })?;
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    match line.trim().strip_prefix("READY port=") {
        Some(p) => Ok((child, p.parse().unwrap())),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("RTSP server did not start (said {line:?})"))
        }
    }
}

/// A camera entry for tests.
pub fn camera(id: &str, url: &str) -> CameraConfig {
    CameraConfig::new(id, url)
}

/// A fresh storage directory for one service under the test target directory (kept after the
/// test for inspection).
pub fn fresh_storage_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("storage-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The service token of the services the tests start ([`fast_service`]): [`http_get`] sends it.
pub const TEST_TOKEN: &str = "test-service-token";
/// The environment variable holding [`TEST_TOKEN`].
pub const TEST_TOKEN_ENV: &str = "DW_TEST_SERVICE_TOKEN";

/// Puts [`TEST_TOKEN`] in the environment, once per test binary.
pub fn set_test_token() {
    static SET: OnceLock<()> = OnceLock::new();
    SET.get_or_init(|| {
        // SAFETY: set once, before the first service of this binary reads it; always the same
        // value.
        unsafe { std::env::set_var(TEST_TOKEN_ENV, TEST_TOKEN) };
    });
}

/// Service settings with short timeouts for tests, a storage directory of its own, and the
/// service token [`TEST_TOKEN`] (reads of the API need a caller).
pub fn fast_service() -> ServiceConfig {
    set_test_token();
    let mut s = ServiceConfig {
        storage_dir: fresh_storage_dir(),
        ..ServiceConfig::default()
    };
    s.api.token_env = Some(TEST_TOKEN_ENV.into());
    s.ingest.connect_timeout_s = 3.0;
    s.ingest.frame_timeout_s = 3.0;
    s.ingest.backoff_initial_s = 0.2;
    s.ingest.backoff_max_s = 1.0;
    s.ingest.startup_spread_s = 0.0;
    s
}

/// The service running in-process on 127.0.0.1:0.
pub struct Service {
    /// Its shared handles.
    pub handles: Handles,
    /// HTTP address.
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), dumpwatch::app::AppError>>>,
}

impl Service {
    /// Validates `config` (against the real environment) and starts the service.
    pub async fn start(config: Config) -> Service {
        dumpwatch::config::validate(&config, &|n| std::env::var(n).ok())
            .expect("test config is valid");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(dumpwatch::app::run(
            config,
            listener,
            async move {
                let _ = stopped.await;
            },
            move |h| {
                let _ = tx.send(h);
            },
        ));
        let handles = rx.await.expect("service started");
        Service {
            handles,
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Index of a camera by id.
    pub fn index(&self, id: &str) -> usize {
        self.handles.status.index_of(id).expect("camera exists")
    }

    /// Current value of `dumpwatch_frames_total{camera, stage}`.
    pub fn frames(&self, id: &str, stage: &str) -> u64 {
        metric_value(
            &self.handles.metrics.render(),
            "dumpwatch_frames_total",
            &[("camera", id), ("stage", stage)],
        )
    }

    /// Current value of `dumpwatch_frames_dropped_total{camera, reason}`.
    pub fn dropped(&self, id: &str, reason: &str) -> u64 {
        metric_value(
            &self.handles.metrics.render(),
            "dumpwatch_frames_dropped_total",
            &[("camera", id), ("reason", reason)],
        )
    }

    /// Waits until `cond` holds, polling every 50 ms; panics with `what` after `limit`.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut(&Service) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !cond(self) {
            if Instant::now() > deadline {
                panic!(
                    "timed out after {limit:?} waiting for: {what}\ncameras: {:#?}",
                    self.handles.status.snapshot()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the service and waits for a clean exit.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let r = tokio::time::timeout(Duration::from_secs(15), self.task.take().unwrap())
            .await
            .expect("service stops within 15 s");
        r.expect("service task did not panic")
            .expect("service exited cleanly");
    }
}

/// Reads one sample from Prometheus text (0 if absent).
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name)
                && (l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' '))
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}

/// A plain HTTP/1.0 GET on 127.0.0.1 with the service token [`TEST_TOKEN`]; returns (status,
/// body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "GET {path} HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer {TEST_TOKEN}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP header end");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, buf[split + 4..].to_vec())
}

/// The codec of a file made by make_media.sh (by its extension: `.h265` or `.h264`).
pub fn codec_of(path: &Path) -> dumpwatch::codec::VideoCodec {
    if path.extension().is_some_and(|e| e == "h265") {
        dumpwatch::codec::VideoCodec::H265
    } else {
        dumpwatch::codec::VideoCodec::H264
    }
}

/// Splits an Annex B file into access units at access unit delimiters (make_media.sh writes them).
pub fn access_units(path: &Path) -> Vec<Vec<u8>> {
    let codec = codec_of(path);
    let data = std::fs::read(path).unwrap();
    let mut starts = vec![];
    let mut i = 0;
    while i + 4 < data.len() {
        if data[i..i + 4] == [0, 0, 0, 1]
            && codec.nal_kind(&data[i + 4..]) == dumpwatch::codec::NalKind::Delimiter
        {
            starts.push(i);
            i += 4;
        } else {
            i += 1;
        }
    }
    starts.push(data.len());
    starts
        .windows(2)
        .map(|w| data[w[0]..w[1]].to_vec())
        .collect()
}

/// Whether an H.264 access unit holds an IDR slice.
pub fn is_keyframe(au: &[u8]) -> bool {
    dumpwatch::codec::VideoCodec::H264.is_random_access(au)
}

/// The `dumpwatch` binary, with the ONNX Runtime library and logging set; stdout discarded.
pub fn dumpwatch_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dumpwatch"));
    c.env(
        "ORT_DYLIB_PATH",
        std::env::var("ORT_DYLIB_PATH").unwrap_or_else(|_| {
            root()
                .join("models/onnxruntime/libonnxruntime.so.1.31.1")
                .display()
                .to_string()
        }),
    )
    .env("RUST_LOG", "info,retina=warn")
    .stdout(Stdio::null());
    c
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The reference receiver (`dumpwatch receiver`) in its own process on a free port, keeping what
/// it accepts in `inbox`, answering each request after `latency_ms`, checking signatures with
/// the secret `secret` (passed in the environment variable `secret_env`). Returns the process
/// and the endpoint to deliver to.
/// The API address a `dumpwatch run` printed to its log (`dumpwatch: serving http://ADDR`),
/// once the whole line is there: a log read while the line is being written must not yield
/// half an address.
pub fn served_address(log: &str) -> Option<String> {
    log.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| l.split("serving http://").nth(1))
        .map(|a| a.trim().to_owned())
        .next_back()
}

pub fn receiver_process(
    inbox: &Path,
    latency_ms: u32,
    secret_env: &str,
    secret: &str,
) -> (KillOnDrop, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let receiver = KillOnDrop(
        dumpwatch_command()
            .args([
                "receiver",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--dir",
            ])
            .arg(inbox)
            .args([
                "--latency-ms",
                &latency_ms.to_string(),
                "--secret-env",
                secret_env,
            ])
            .env(secret_env, secret)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (receiver, format!("http://127.0.0.1:{port}/api/incidents"))
}

/// Adds an account to the users file `file` with the CLI, the password on standard input.
pub fn add_user(file: &std::path::Path, name: &str, shown: &str, role: &str, password: &str) {
    use std::io::Write;
    let mut child = dumpwatch_command()
        .args([
            "users",
            "add",
            name,
            "--role",
            role,
            "--display-name",
            shown,
            "--file",
        ])
        .arg(file)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    assert!(
        child.wait().unwrap().success(),
        "dumpwatch users add failed"
    );
}

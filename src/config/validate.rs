//! Validation that collects every problem with its path (`cameras[12].zones[0].polygon: ...`),
//! so an operator fixes a file in one pass instead of one error per restart.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use super::{AnalyzeConfig, AnalyzeOverrides, CameraConfig, Config};

/// One problem in the configuration.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Problem {
    /// Where: `ingest.frame_timeout_s`, `cameras[3].url`, ...
    pub path: String,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown / mistyped fields.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The files parsed, but values are wrong.
    #[error("{} problem(s) in the configuration:\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

struct Collector(Vec<Problem>);

impl Collector {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn range(&mut self, path: &str, value: f64, min: f64, max: f64) {
        if !value.is_finite() || value < min || value > max {
            self.add(
                path,
                format!("{value} is out of range: must be between {min} and {max}"),
            );
        }
    }

    /// `SECTION.backoff_initial_s` and `SECTION.backoff_max_s`: each in range, and in order.
    fn backoff(&mut self, section: &str, initial: f64, max: f64) {
        self.range(
            &format!("{section}.backoff_initial_s"),
            initial,
            0.01,
            3600.0,
        );
        self.range(&format!("{section}.backoff_max_s"), max, 0.01, 86_400.0);
        if max < initial {
            self.add(
                format!("{section}.backoff_max_s"),
                format!("{max} is smaller than {section}.backoff_initial_s ({initial})"),
            );
        }
    }

    fn count(&mut self, path: &str, value: u32, min: u32, max: u32) {
        if value < min || value > max {
            self.add(
                path,
                format!("{value} is out of range: must be between {min} and {max}"),
            );
        }
    }
}

/// Checks the loaded configuration. `env` looks up environment variables (the process
/// environment in production, a map in tests). Returns every problem found.
pub fn validate(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    let mut c = Collector(Vec::new());
    let svc = &config.service;

    let ing = &svc.ingest;
    c.range(
        "ingest.connect_timeout_s",
        ing.connect_timeout_s,
        0.1,
        300.0,
    );
    c.range("ingest.frame_timeout_s", ing.frame_timeout_s, 0.5, 600.0);
    c.backoff("ingest", ing.backoff_initial_s, ing.backoff_max_s);
    c.range("ingest.stable_after_s", ing.stable_after_s, 0.0, 86400.0);
    c.range("ingest.startup_spread_s", ing.startup_spread_s, 0.0, 600.0);
    c.count("decode.threads", svc.decode.threads, 1, 64);
    c.range(
        "decode.min_keyframe_interval_s",
        svc.decode.min_keyframe_interval_s,
        0.0,
        3600.0,
    );
    c.count("model.sessions", svc.model.sessions, 1, 64);
    c.count(
        "model.threads_per_session",
        svc.model.threads_per_session,
        1,
        64,
    );
    c.count("model.max_batch", svc.model.max_batch, 1, 64);
    c.range(
        "model.max_detections_per_s",
        svc.model.max_detections_per_s,
        0.0,
        10_000.0,
    );
    if let super::CpuBudget::Cores(cores) = svc.model.cpu_budget {
        c.range("model.cpu_budget", cores, 0.1, 1024.0);
    }
    c.range(
        "model.confidence",
        f64::from(svc.model.confidence),
        0.0,
        1.0,
    );
    for (name, t) in &svc.model.class_confidence {
        c.range(
            &format!("model.class_confidence.{name}"),
            f64::from(*t),
            0.0,
            1.0,
        );
    }
    c.range(
        "model.iou_threshold",
        f64::from(svc.model.iou_threshold),
        0.0,
        1.0,
    );
    c.range(
        "model.min_box_area_px",
        f64::from(svc.model.min_box_area_px),
        0.0,
        1e8,
    );
    if svc.model.max_detections == 0 || svc.model.max_detections > 10_000 {
        c.add(
            "model.max_detections",
            format!(
                "{} is out of range: must be between 1 and 10000",
                svc.model.max_detections
            ),
        );
    }
    match url::Url::parse(&svc.delivery.endpoint) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {
            if let Some(problem) = endpoint_credentials(&u) {
                c.add("delivery.endpoint", problem);
            }
        }
        Ok(u) => c.add(
            "delivery.endpoint",
            format!(
                "scheme {:?} is not supported: use http or https",
                u.scheme()
            ),
        ),
        Err(e) => c.add("delivery.endpoint", format!("not a URL: {e}")),
    }
    if let Some(name) = &svc.delivery.secret_env {
        if env(name).is_none_or(|v| v.is_empty()) {
            c.add(
                "delivery.secret_env",
                format!("environment variable {name} is not set"),
            );
        }
    }
    let d = &svc.delivery;
    c.count("delivery.concurrency", d.concurrency, 1, 256);
    c.range("delivery.timeout_s", d.timeout_s, 0.1, 600.0);
    c.backoff("delivery", d.backoff_initial_s, d.backoff_max_s);
    c.range("delivery.shutdown_grace_s", d.shutdown_grace_s, 0.0, 60.0);
    if crate::clock::parse_utc_offset(&d.utc_offset).is_none() {
        c.add(
            "delivery.utc_offset",
            format!("{:?} is not an offset like +08:00 or -05:30", d.utc_offset),
        );
    }
    if let Some(u) = &d.public_url {
        match url::Url::parse(u) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => c.add(
                "delivery.public_url",
                format!("{u:?} is not an http(s) URL"),
            ),
        }
    }
    for (name, code) in [
        ("dumping", &d.categories.dumping),
        ("accumulation", &d.categories.accumulation),
        ("cleared", &d.categories.cleared),
    ] {
        if code.trim().is_empty() || code.len() > 64 {
            c.add(
                format!("delivery.categories.{name}"),
                "must be a code of 1 to 64 characters",
            );
        }
    }
    let e = &svc.evidence;
    c.range("evidence.max_age_days", e.max_age_days, 0.01, 36_500.0);
    c.range("evidence.max_gb", e.max_gb, 0.001, 1_000_000.0);
    c.range("evidence.clip_pre_s", e.clip_pre_s, 0.0, 120.0);
    c.range("evidence.clip_post_s", e.clip_post_s, 0.0, 120.0);
    c.range("evidence.clip_ring_max_mb", e.clip_ring_max_mb, 0.1, 1000.0);
    c.range(
        "evidence.clip_before_put_down_s",
        e.clip_before_put_down_s,
        0.0,
        60.0,
    );
    c.range("evidence.clip_act_max_mb", e.clip_act_max_mb, 0.0, 10_000.0);
    if !(1..=65_536).contains(&svc.api.max_connections) {
        c.add(
            "api.max_connections",
            format!(
                "{} is out of range: must be between 1 and 65536",
                svc.api.max_connections
            ),
        );
    }
    c.range("api.idle_timeout_s", svc.api.idle_timeout_s, 0.1, 3600.0);
    if !(0..=19).contains(&svc.api.nice) {
        c.add(
            "api.nice",
            format!(
                "{} is out of range: nice values go from 0 (the pipeline's priority) to 19 (lowest)",
                svc.api.nice
            ),
        );
    }
    c.range(
        "api.header_read_timeout_s",
        svc.api.header_read_timeout_s,
        0.1,
        3600.0,
    );
    c.range(
        "api.request_timeout_s",
        svc.api.request_timeout_s,
        0.1,
        3600.0,
    );
    for (field, name) in [
        ("api.token_env", &svc.api.token_env),
        ("api.case_token_env", &svc.api.case_token_env),
    ] {
        if let Some(name) = name
            && env(name).is_none_or(|v| v.is_empty())
        {
            c.add(field, format!("environment variable {name} is not set"));
        }
    }
    if let (Some(a), Some(b)) = (&svc.api.token_env, &svc.api.case_token_env)
        && env(a).is_some_and(|t| !t.is_empty() && env(b).as_deref() == Some(t.as_str()))
    {
        c.add(
            "api.case_token_env",
            "holds the same token as api.token_env: give the city system a token of its own",
        );
    }
    c.range(
        "api.session_timeout_h",
        svc.api.session_timeout_h,
        0.01,
        24.0 * 30.0,
    );

    c.range("max_cameras", f64::from(svc.max_cameras), 1.0, 4096.0);
    validate_analyze(&mut c, "analyze", &AnalyzeOverrides::from(&svc.analyze));
    check_object_areas(&mut c, "analyze", &svc.analyze);

    let mut ids = HashSet::new();
    for (i, cam) in config.cameras.iter().enumerate() {
        validate_camera(&mut c, &format!("cameras[{i}]"), cam, env);
        validate_camera_analyze(&mut c, &format!("cameras[{i}]"), cam, &svc.analyze);
        if !ids.insert(cam.id.as_str()) {
            c.add(
                format!("cameras[{i}].id"),
                format!("duplicate camera id {:?}", cam.id),
            );
        }
    }
    if c.0.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(c.0))
    }
}

/// Query parameters that carry a credential (compared without case).
const CREDENTIAL_PARAMETERS: &[&str] = &[
    "token",
    "access_token",
    "auth",
    "key",
    "apikey",
    "api_key",
    "secret",
    "password",
    "passwd",
    "sig",
    "signature",
];

/// Why the delivery endpoint must not be used as written: it carries a credential, which would
/// end up in logs, in the configuration history and in every stored delivery error.
fn endpoint_credentials(u: &url::Url) -> Option<String> {
    if !u.username().is_empty() || u.password().is_some() {
        return Some(
            "the URL contains credentials (user:password@): remove them; the city system \
             authenticates dumpwatch by the body's HMAC signature (delivery.secret_env)"
                .into(),
        );
    }
    let name = u.query_pairs().map(|(k, _)| k).find(|k| {
        CREDENTIAL_PARAMETERS
            .iter()
            .any(|c| k.eq_ignore_ascii_case(c))
    })?;
    Some(format!(
        "the URL carries a credential in its query (`{name}=`): remove it; the city system \
         authenticates dumpwatch by the body's HMAC signature (delivery.secret_env)"
    ))
}

fn validate_camera(
    c: &mut Collector,
    at: &str,
    cam: &CameraConfig,
    env: &dyn Fn(&str) -> Option<String>,
) {
    let id_ok = !cam.id.is_empty()
        && cam.id.len() <= 64
        && cam
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !id_ok {
        c.add(
            format!("{at}.id"),
            format!(
                "{:?} is not a valid id: use 1-64 characters of A-Z a-z 0-9 _ - .",
                cam.id
            ),
        );
    } else if cam.id.bytes().all(|b| b == b'.') {
        // The id names the camera's evidence directory: `.` or `..` would be another one.
        c.add(
            format!("{at}.id"),
            format!(
                "{:?} is not a valid id: it names a directory; use at least one letter or digit",
                cam.id
            ),
        );
    }
    let urls = std::iter::once(("url", &cam.url))
        .chain(cam.analysis_url.as_ref().map(|u| ("analysis_url", u)));
    for (field, text) in urls {
        match url::Url::parse(text) {
            Err(e) => c.add(format!("{at}.{field}"), format!("not a URL: {e}")),
            Ok(u) => {
                if u.scheme() != "rtsp" {
                    c.add(
                        format!("{at}.{field}"),
                        format!("scheme {:?} is not supported: use rtsp://", u.scheme()),
                    );
                }
                if u.host_str().is_none_or(str::is_empty) {
                    c.add(format!("{at}.{field}"), "the URL has no host");
                }
                if !u.username().is_empty() || u.password().is_some() {
                    c.add(format!("{at}.{field}"),
                        "the URL contains credentials: remove them and set username_env / password_env instead");
                }
            }
        }
    }
    if cam.analysis_url.as_ref() == Some(&cam.url) {
        c.add(
            format!("{at}.analysis_url"),
            "is the same as url: leave it out to analyse the main stream, or name the camera's sub-stream",
        );
    }
    for (field, name) in [
        ("username_env", &cam.username_env),
        ("password_env", &cam.password_env),
    ] {
        if let Some(name) = name {
            if env(name).is_none() {
                c.add(
                    format!("{at}.{field}"),
                    format!("environment variable {name} is not set"),
                );
            }
        }
    }
    if cam.password_env.is_some() && cam.username_env.is_none() {
        c.add(
            format!("{at}.username_env"),
            "password_env is set but username_env is not",
        );
    }
    if let Some(loc) = &cam.location {
        c.range(&format!("{at}.location.lat"), loc.lat, -90.0, 90.0);
        c.range(&format!("{at}.location.lon"), loc.lon, -180.0, 180.0);
    }
    let mut names = HashSet::new();
    for (z, zone) in cam.zones.iter().enumerate() {
        if zone.name.trim().is_empty() {
            c.add(format!("{at}.zones[{z}].name"), "a zone needs a name");
        } else if !names.insert(zone.name.as_str()) {
            c.add(
                format!("{at}.zones[{z}].name"),
                format!("duplicate zone name {:?}", zone.name),
            );
        }
        if let Err(e) = zone.polygon.validate() {
            c.add(format!("{at}.zones[{z}].polygon"), e.to_string());
        }
    }
}

/// Range checks of the fields an `[analyze]` section (or override) sets.
fn validate_analyze(c: &mut Collector, at: &str, a: &AnalyzeOverrides) {
    let times = [
        ("dwell_s", a.dwell_s, 1.0, 86_400.0),
        ("clear_after_s", a.clear_after_s, 1.0, 86_400.0),
        ("cooldown_s", a.cooldown_s, 0.0, 86_400.0),
        ("min_object_area", a.min_object_area, 0.0, 1.0),
        ("max_object_area", a.max_object_area, 0.000_01, 1.0),
        ("active_fps", a.active_fps, 0.1, 30.0),
        ("active_hold_s", a.active_hold_s, 0.0, 3600.0),
        ("idle_refresh_s", a.idle_refresh_s, 1.0, 86_400.0),
        ("gate_change_share", a.gate_change_share, 0.0, 1.0),
        ("startup_grace_s", a.startup_grace_s, 0.0, 3600.0),
        ("reclaim_after_s", a.reclaim_after_s, 0.5, 3600.0),
        ("change_threshold", a.change_threshold, 4.0, 128.0),
        ("colour_threshold", a.colour_threshold, 4.0, 128.0),
    ];
    for (name, value, min, max) in times {
        if let Some(v) = value {
            c.range(&format!("{at}.{name}"), v, min, max);
        }
    }
    for (name, list) in [
        ("dumpable_classes", &a.dumpable_classes),
        ("actor_classes", &a.actor_classes),
    ] {
        for (k, class) in list.iter().flatten().enumerate() {
            if class.trim().is_empty() {
                c.add(format!("{at}.{name}[{k}]"), "empty class name");
            }
        }
    }
    for (name, t) in a.class_confidence.iter().flatten() {
        c.range(
            &format!("{at}.class_confidence.{name}"),
            f64::from(*t),
            0.0,
            1.0,
        );
    }
}

fn check_object_areas(c: &mut Collector, at: &str, a: &AnalyzeConfig) {
    if a.min_object_area >= a.max_object_area {
        c.add(
            format!("{at}.min_object_area"),
            format!(
                "{} is not smaller than max_object_area ({})",
                a.min_object_area, a.max_object_area
            ),
        );
    }
}

/// A camera's and its zones' analyze overrides and masks.
fn validate_camera_analyze(
    c: &mut Collector,
    at: &str,
    cam: &CameraConfig,
    service: &AnalyzeConfig,
) {
    validate_analyze(c, &format!("{at}.analyze"), &cam.analyze);
    let camera = cam.analyze.apply(service);
    if cam.analyze.min_object_area.is_some() || cam.analyze.max_object_area.is_some() {
        check_object_areas(c, &format!("{at}.analyze"), &camera);
    }
    for (z, zone) in cam.zones.iter().enumerate() {
        let zat = format!("{at}.zones[{z}].analyze");
        validate_analyze(c, &zat, &zone.analyze);
        for field in zone.analyze.camera_only_fields() {
            c.add(
                format!("{zat}.{field}"),
                "applies to the whole camera: set it in the camera's [cameras.analyze]",
            );
        }
        if zone.analyze.min_object_area.is_some() || zone.analyze.max_object_area.is_some() {
            check_object_areas(c, &zat, &zone.analyze.apply(&camera));
        }
    }
    for (m, mask) in cam.masks.iter().enumerate() {
        if mask.name.trim().is_empty() {
            c.add(format!("{at}.masks[{m}].name"), "a mask needs a name");
        }
        if let Err(e) = mask.polygon.validate() {
            c.add(format!("{at}.masks[{m}].polygon"), e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CamerasFile, ServiceConfig};

    fn config(service: &str, cameras: &str) -> Config {
        let service: ServiceConfig = toml::from_str(service).unwrap();
        let cameras: CamerasFile = toml::from_str(cameras).unwrap();
        Config {
            service,
            cameras: cameras.cameras,
        }
    }

    fn problems(service: &str, cameras: &str) -> Vec<String> {
        let env = |name: &str| (name == "SET").then(|| "x".to_string());
        match validate(&config(service, cameras), &env) {
            Ok(()) => vec![],
            Err(ConfigError::Invalid(p)) => p.iter().map(ToString::to_string).collect(),
            Err(e) => panic!("unexpected {e}"),
        }
    }

    const GOOD: &str = r#"
[[cameras]]
id = "cam-1"
url = "rtsp://127.0.0.1:8554/a"
username_env = "SET"
password_env = "SET"
location = { lat = 30.5, lon = 114.3, address = "Lane 3" }
[[cameras.zones]]
name = "roadside"
polygon = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.95], [0.1, 0.95]]
"#;

    #[test]
    fn good_config_passes() {
        assert_eq!(problems("", GOOD), Vec::<String>::new());
    }

    #[test]
    fn analyze_settings_are_checked_at_every_level() {
        let cams = r#"
[[cameras]]
id = "cam-1"
url = "rtsp://127.0.0.1/a"
[cameras.analyze]
active_fps = 0
min_object_area = 0.5
[[cameras.masks]]
name = ""
polygon = [[0.1, 0.1], [0.2, 0.2]]
[[cameras.zones]]
name = "road"
polygon = [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]
[cameras.zones.analyze]
dwell_s = -1
idle_refresh_s = 10
class_confidence = { suitcase = 2.0 }
"#;
        let p = problems(
            "[analyze]
clear_after_s = 0
dumpable_classes = [\"\"]
",
            cams,
        );
        let expect = [
            "analyze.clear_after_s: 0 is out of range",
            "analyze.dumpable_classes[0]: empty class name",
            "cameras[0].analyze.active_fps: 0 is out of range",
            "cameras[0].analyze.min_object_area: 0.5 is not smaller than max_object_area (0.15)",
            "cameras[0].zones[0].analyze.dwell_s: -1 is out of range",
            "cameras[0].zones[0].analyze.class_confidence.suitcase: 2 is out of range",
            "cameras[0].zones[0].analyze.idle_refresh_s: applies to the whole camera",
            "cameras[0].masks[0].name: a mask needs a name",
            "cameras[0].masks[0].polygon: a polygon needs at least 3 points",
        ];
        for e in expect {
            assert!(
                p.iter().any(|x| x.starts_with(e)),
                "missing {e:?} in {p:#?}"
            );
        }
        assert_eq!(p.len(), expect.len(), "{p:#?}");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let cams = r#"
[[cameras]]
id = "cam-1"
url = "http://127.0.0.1/a"
[[cameras.zones]]
name = "a"
polygon = [[0.1, 0.1], [0.2, 0.2]]
[[cameras]]
id = "cam-1"
url = "rtsp://admin:pw@127.0.0.1/a"
username_env = "UNSET_VAR"
location = { lat = 91.0, lon = 0.0 }
[[cameras.zones]]
name = "bow"
polygon = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]
[[cameras.zones]]
name = "out"
polygon = [[0.1, 0.1], [1.5, 0.1], [0.5, 0.5]]
[[cameras]]
id = "bad id!"
url = "not a url"
[[cameras]]
id = "cam-3"
url = "rtsp://127.0.0.1/main"
analysis_url = "rtsp://127.0.0.1/main"
[[cameras]]
id = "cam-4"
url = "rtsp://127.0.0.1/main"
analysis_url = "http://127.0.0.1/sub"
[[cameras]]
id = ".."
url = "rtsp://127.0.0.1/up"
[[cameras]]
id = "."
url = "rtsp://127.0.0.1/here"
"#;
        let p = problems(
            "[ingest]\nframe_timeout_s = 0\nbackoff_max_s = 0.5\n[decode]\nthreads = 0\n",
            cams,
        );
        let expect = [
            "ingest.frame_timeout_s: 0 is out of range",
            "ingest.backoff_max_s: 0.5 is smaller than ingest.backoff_initial_s",
            "decode.threads: 0 is out of range",
            "cameras[0].url: scheme \"http\" is not supported",
            "cameras[0].zones[0].polygon: a polygon needs at least 3 points",
            "cameras[1].url: the URL contains credentials",
            "cameras[1].username_env: environment variable UNSET_VAR is not set",
            "cameras[1].location.lat: 91 is out of range",
            "cameras[1].zones[0].polygon: the polygon intersects itself",
            "cameras[1].zones[1].polygon: point 1 (1.5, 0.1) is outside the frame",
            "cameras[1].id: duplicate camera id \"cam-1\"",
            "cameras[2].id: \"bad id!\" is not a valid id",
            "cameras[2].url: not a URL",
            "cameras[3].analysis_url: is the same as url",
            "cameras[4].analysis_url: scheme \"http\" is not supported",
            "cameras[5].id: \"..\" is not a valid id: it names a directory",
            "cameras[6].id: \".\" is not a valid id: it names a directory",
        ];
        for e in expect {
            assert!(
                p.iter().any(|line| line.starts_with(e)),
                "missing {e:?} in\n{}",
                p.join("\n")
            );
        }
        assert_eq!(p.len(), expect.len(), "{}", p.join("\n"));
    }

    #[test]
    fn a_delivery_endpoint_with_credentials_is_refused() {
        for (endpoint, expect) in [
            (
                "https://city:pw@cases.example/api",
                "the URL contains credentials (user:password@)",
            ),
            (
                "https://cases.example/api?Token=abc",
                "the URL carries a credential in its query (`Token=`)",
            ),
            (
                "https://cases.example/api?x=1&api_key=abc",
                "the URL carries a credential in its query (`api_key=`)",
            ),
        ] {
            let p = problems(&format!("[delivery]\nendpoint = \"{endpoint}\"\n"), GOOD);
            assert_eq!(p.len(), 1, "{endpoint}: {p:?}");
            assert!(
                p[0].starts_with(&format!("delivery.endpoint: {expect}")),
                "{endpoint}: {p:?}"
            );
        }
        // A plain query stays allowed.
        let p = problems(
            "[delivery]\nendpoint = \"https://cases.example/api?source=dumpwatch\"\n",
            GOOD,
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn unset_delivery_secret_is_an_error() {
        let p = problems("[delivery]\nsecret_env = \"NOPE\"\n", GOOD);
        assert_eq!(
            p,
            vec!["delivery.secret_env: environment variable NOPE is not set"]
        );
    }
}

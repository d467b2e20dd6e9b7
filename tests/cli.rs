//! The `dumpwatch` binary's configuration checks, as an operator runs them.

use std::process::Command;

fn dumpwatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dumpwatch"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn the_example_configuration_is_valid() {
    let out = dumpwatch()
        .args(["check-config", "--config", "config/dumpwatch.example.toml"])
        .envs([
            ("DW_HIK_USER", "u"),
            ("DW_HIK_PASSWORD", "p"),
            ("DW_DAHUA_USER", "u"),
            ("DW_DAHUA_PASSWORD", "p"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("77 camera(s)"), "{stdout}");
    assert!(
        stdout.contains("decoder: libavcodec, H.264 and H.265"),
        "{stdout}"
    );
    assert!(stdout.contains("decode.hwaccel = \"none\": ok"), "{stdout}");
}

#[test]
fn check_config_says_when_the_hardware_decoder_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dumpwatch.toml");
    std::fs::write(dir.path().join("cameras.toml"), "").unwrap();
    std::fs::write(&config, "[decode]\nhwaccel = \"vaapi\"\n").unwrap();
    let out = dumpwatch()
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // Either this machine has a VA-API device, or the operator is told decoding stays in software.
    assert!(
        stdout.contains("decode.hwaccel = \"vaapi\": ok")
            || stdout.contains(
                "decode.hwaccel = \"vaapi\": unavailable here (cannot open the vaapi device"
            ),
        "{stdout}"
    );
    std::fs::write(&config, "[decode]\nhwaccel = \"opencl\"\n").unwrap();
    let out = dumpwatch()
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("hwaccel"), "{stderr}");
}

#[test]
fn the_deployment_configurations_are_valid() {
    // The service file of the container image and the one inside the Kubernetes ConfigMap, with
    // the example cameras and the secrets they name.
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/deploy/kubernetes.yaml"),
    )
    .unwrap();
    let start = manifest.find("dumpwatch.toml: |\n").unwrap() + "dumpwatch.toml: |\n".len();
    let end = start + manifest[start..].find("  cameras.toml: |").unwrap();
    let embedded: String = manifest[start..end]
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let k8s = dir.path().join("k8s.toml");
    std::fs::write(&k8s, embedded).unwrap();
    for service in [
        std::path::PathBuf::from("config/deploy/dumpwatch.toml"),
        k8s,
    ] {
        let out = dumpwatch()
            .arg("check-config")
            .arg("--config")
            .arg(&service)
            .args(["--cameras", "config/cameras.example.toml"])
            .envs([
                ("DW_HIK_USER", "u"),
                ("DW_HIK_PASSWORD", "p"),
                ("DW_DAHUA_USER", "u"),
                ("DW_DAHUA_PASSWORD", "p"),
                ("DUMPWATCH_API_TOKEN", "t"),
                ("DUMPWATCH_CASE_TOKEN", "c"),
                ("DUMPWATCH_DELIVERY_SECRET", "s"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            service.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The container image cannot be built here (no container runtime): what it installs is checked
/// instead. The service file it copies is the deployment one (whose paths point into the image),
/// and the model and ONNX Runtime library land where that file looks for them.
#[test]
fn the_container_image_ships_the_deployment_service_file_and_what_it_names() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let containerfile = std::fs::read_to_string(root.join("config/deploy/Containerfile")).unwrap();
    // COPY [--from=...] SOURCE DEST: the destinations of the runtime stage, by source.
    let copies: Vec<(&str, &str)> = containerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter_map(|l| {
            let words: Vec<&str> = l
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            match words.as_slice() {
                [source, dest] => Some((*source, *dest)),
                _ => None,
            }
        })
        .collect();
    let dest_of = |source: &str| {
        copies
            .iter()
            .find(|(s, _)| *s == source)
            .map(|(_, d)| *d)
            .unwrap_or_else(|| panic!("the Containerfile copies no {source}: {copies:?}"))
    };
    assert_eq!(
        dest_of("config/deploy/dumpwatch.toml"),
        "/etc/dumpwatch/dumpwatch.toml"
    );
    assert!(
        containerfile.contains("\"--config\", \"/etc/dumpwatch/dumpwatch.toml\""),
        "the image runs another service file"
    );
    let service: toml::Value = toml::from_str(
        &std::fs::read_to_string(root.join("config/deploy/dumpwatch.toml")).unwrap(),
    )
    .unwrap();
    let installed = |source: &str| {
        let dest = dest_of(source);
        let name = std::path::Path::new(source).file_name().unwrap();
        if dest.ends_with('/') {
            format!("{dest}{}", name.to_string_lossy())
        } else {
            dest.to_owned()
        }
    };
    assert_eq!(
        service["model"]["path"].as_str(),
        Some(installed("/src/models/yolov12n.onnx").as_str())
    );
    assert_eq!(
        service["model"]["ort_library"].as_str(),
        Some(installed("/src/models/onnxruntime/libonnxruntime.so.1.31.1").as_str())
    );
    // The storage directory is made in the image (owned by its user) and is its volume; the
    // cameras file sits beside the service file, mounted by the operator (docs/deployment.md).
    let storage = service["storage_dir"].as_str().unwrap();
    assert!(
        containerfile.contains(&format!("mkdir -p {storage} "))
            && containerfile.contains(&format!("VOLUME {storage}")),
        "the image does not make {storage} a volume of its own"
    );
    assert_eq!(
        service["cameras_file"].as_str(),
        Some("/etc/dumpwatch/cameras.toml")
    );
    let deployment = std::fs::read_to_string(root.join("docs/deployment.md")).unwrap();
    assert!(deployment.contains(":/etc/dumpwatch/cameras.toml"));
}

#[test]
fn every_problem_is_printed_with_its_path_and_the_exit_code_is_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cameras = dir.path().join("cameras.toml");
    std::fs::write(
        &cameras,
        r#"
[[cameras]]
id = "a"
url = "rtsp://cam-a.example/live"
[[cameras.zones]]
name = "z"
polygon = [[0.1, 0.1], [0.5, 0.5]]

[[cameras]]
id = "a"
url = "rtsp://user:pw@cam-b.example/live"
password_env = "DW_CLI_TEST_SURELY_UNSET"
"#,
    )
    .unwrap();
    let out = dumpwatch()
        .args(["check-config", "--cameras"])
        .arg(&cameras)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "cameras[0].zones[0].polygon: a polygon needs at least 3 points",
        "cameras[1].id: duplicate camera id \"a\"",
        "cameras[1].url: the URL contains credentials",
        "cameras[1].password_env: environment variable DW_CLI_TEST_SURELY_UNSET is not set",
        "cameras[1].username_env: password_env is set but username_env is not",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("pw@"), "the password was echoed: {stderr}");
}

#[test]
fn a_typo_is_reported_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let service = dir.path().join("dumpwatch.toml");
    std::fs::write(
        &service,
        "listen = \"127.0.0.1:9000\"\n[ingest]\nframe_timeout = 5\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("cameras.toml"), "").unwrap();
    let out = dumpwatch()
        .args(["check-config", "--config"])
        .arg(&service)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dumpwatch.toml"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("unknown field `frame_timeout`"), "{stderr}");
}

#[test]
fn a_missing_cameras_file_is_named() {
    let out = dumpwatch()
        .args(["check-config", "--cameras", "/nonexistent/cams.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read config file /nonexistent/cams.toml"),
        "{stderr}"
    );
}

#[test]
fn detect_prints_detections_writes_annotated_jpegs_and_names_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("not-an-image.jpg");
    std::fs::write(&bogus, b"definitely not a JPEG").unwrap();
    let grey = dir.path().join("grey.png");
    image::DynamicImage::ImageRgb8(
        image::open("/usr/share/darknet/data/dog.jpg")
            .unwrap()
            .to_rgb8(),
    )
    .to_luma8()
    .save(&grey)
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = dumpwatch()
        .args(["detect", "/usr/share/darknet/data/dog.jpg"])
        .arg(&grey)
        .arg(&bogus)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a bad file makes the run fail: {stdout}{stderr}"
    );
    assert!(
        stderr.contains("not-an-image.jpg: cannot read the image"),
        "{stderr}"
    );
    assert!(stdout.contains("dog.jpg: 768x576"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("dog ")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("bicycle ")),
        "{stdout}"
    );
    let annotated = image::open(out_dir.join("dog.jpg")).unwrap();
    assert_eq!((annotated.width(), annotated.height()), (768, 576));
    assert!(out_dir.join("grey.jpg").exists());
}

//! `dumpwatch replay CLIP`: the real pipeline over a recorded clip; prints the events and writes
//! their evidence pictures.

use std::path::{Path, PathBuf};

use anyhow::Context;
use dumpwatch::analyze::{AnalyzerConfig, FrameRole};
use dumpwatch::config::{AnalyzeOverrides, ZoneConfig};
use dumpwatch::geometry::Polygon;

/// Arguments of `replay`.
pub struct ReplayArgs {
    pub clip: PathBuf,
    pub config: Option<PathBuf>,
    pub camera: Option<String>,
    pub zones: Vec<String>,
    pub sets: Vec<String>,
    pub out: PathBuf,
    pub json: bool,
    pub trace: bool,
    pub detect_rate: Option<f64>,
}

/// Parses `--zone "[[x, y], ...]"`.
fn parse_zone(text: &str, index: usize) -> anyhow::Result<Polygon> {
    let table: toml::Table = toml::from_str(&format!("polygon = {text}")).with_context(|| {
        format!(
            "--zone #{}: expected [[x, y], ...] with normalised coordinates",
            index + 1
        )
    })?;
    let polygon: Polygon = table["polygon"].clone().try_into().with_context(|| {
        format!(
            "--zone #{}: expected [[x, y], ...] with normalised coordinates",
            index + 1
        )
    })?;
    polygon
        .validate()
        .with_context(|| format!("--zone #{}", index + 1))?;
    Ok(polygon)
}

pub fn run(a: ReplayArgs) -> anyhow::Result<()> {
    super::check_detect_rate(a.detect_rate)?;
    let svc = super::service_with_overrides(a.config.as_deref(), &a.sets)?;
    let mut camera = match &a.camera {
        Some(id) => super::camera_from_file(&svc, id)?.1,
        None => dumpwatch::config::CameraConfig::new("replay", "rtsp://replay/"),
    };
    if !a.zones.is_empty() {
        camera.zones = a
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| {
                Ok(ZoneConfig {
                    name: format!("zone{}", i + 1),
                    polygon: parse_zone(z, i)?,
                    analyze: AnalyzeOverrides::default(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
    }
    let mut detector = super::load_detectors(&svc, 1)?.remove(0);
    let cfg = AnalyzerConfig::resolve(
        &svc.analyze,
        &camera,
        &detector.info().class_names,
        &format!("camera {}", camera.id),
    )?;
    let zones: Vec<Polygon> = cfg.zones.iter().map(|z| z.polygon.clone()).collect();
    let stem = a
        .clip
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "clip".into());
    let dir = a.out.join(&stem);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create --out directory {}", dir.display()))?;
    let mut written = 0;
    let mut write_failed: Option<anyhow::Error> = None;
    let class_names = detector.info().class_names.clone();
    let mut last_trace = String::new();
    let mut trace = |t: f64,
                     dets: &[dumpwatch::detection::Detection],
                     an: &dumpwatch::analyze::Analyzer| {
        if !a.trace {
            return;
        }
        let followed: Vec<String> = an
            .followed()
            .iter()
            .map(|f| {
                format!(
                    "{} [{:.0},{:.0},{:.0},{:.0}] appeared {:.1} seen {} grey {:.0} vs background {:.0}{}{}{}",
                    f.state, f.bbox.x1, f.bbox.y1, f.bbox.x2, f.bbox.y2, f.appeared_at, f.sightings,
                    f.grey_now_vs_background.0, f.grey_now_vs_background.1,
                    f.chroma_now_vs_background
                        .map(|(now, bg)| format!(
                            " chroma {:.0},{:.0} vs {:.0},{:.0}",
                            now[0], now[1], bg[0], bg[1]
                        ))
                        .unwrap_or_default(),
                    if f.owner_near { " owner-near" } else { "" },
                    f.absent_since.map(|s| format!(" absent-since {s:.1}")).unwrap_or_default()
                )
            })
            .collect();
        let line = followed.join(" | ");
        if line != last_trace {
            let actors: Vec<String> = dets
                .iter()
                .map(|d| {
                    format!(
                        "{} {:.2} [{:.0},{:.0},{:.0},{:.0}]",
                        class_names.get(d.class_id).map_or("?", String::as_str),
                        d.score,
                        d.bbox.x1,
                        d.bbox.y1,
                        d.bbox.x2,
                        d.bbox.y2
                    )
                })
                .collect();
            eprintln!(
                "trace {t:>7.1} s  followed: {}\n              detections: {}",
                if line.is_empty() { "-" } else { &line },
                actors.join("; ")
            );
            last_trace = line;
        }
    };
    let mut on_event = |e: &dumpwatch::analyze::Event,
                        pictures: &[dumpwatch::evidence::EventPicture]| {
        if a.json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            let objects: Vec<String> = e
                .objects
                .iter()
                .map(|o| {
                    format!(
                        "{} {:.2} [{:.0}, {:.0}, {:.0}, {:.0}]",
                        o.class, o.score, o.bbox.x1, o.bbox.y1, o.bbox.x2, o.bbox.y2
                    )
                })
                .collect();
            let actor = e
                .actor
                .as_ref()
                .map(|a| format!(", owner: {} (last near at {:.1} s)", a.class, a.last_seen))
                .unwrap_or_default();
            println!(
                "{:>8.1} s  {:<8} incident {}  zone {}  appeared {:.1} s  unattended {:.1} s  confidence {:.2}  objects: {}{}",
                e.at,
                e.kind.as_str(),
                e.incident,
                e.zone,
                e.appeared_at,
                e.dwell_s,
                e.confidence,
                objects.join("; "),
                actor
            );
        }
        for (role, kept) in pictures {
            let zone = zones
                .get(e.zone_index)
                .cloned()
                .unwrap_or_else(Polygon::full_frame);
            let boxes_in = (kept.width(), kept.height());
            let frame = match kept.pixels() {
                Ok(f) => f,
                Err(err) => {
                    write_failed.get_or_insert(anyhow::anyhow!(
                        "cannot decode the {} picture of incident {}: {err}",
                        dumpwatch::incident::role_name(*role),
                        e.incident
                    ));
                    continue;
                }
            };
            let img =
                dumpwatch::evidence::picture(&frame, e, &zone, *role == FrameRole::Event, boxes_in);
            let path = dir.join(dumpwatch::evidence::file_name(e, *role));
            match dumpwatch::evidence::write_jpeg(&img, &path) {
                Ok(_) => written += 1,
                Err(err) => {
                    write_failed
                        .get_or_insert(anyhow::anyhow!("cannot write {}: {err}", path.display()));
                }
            }
        }
    };
    let stats = dumpwatch::replay::replay_clip_traced(
        &a.clip,
        &mut detector,
        cfg,
        a.detect_rate,
        None,
        &mut on_event,
        &mut trace,
    )?;
    if let Some(e) = write_failed {
        return Err(e);
    }
    for (at, view) in &stats.views {
        eprintln!("{at:>7.1} s  view     {}", view.as_str());
    }
    eprintln!(
        "{}: {:.1} s of video, {} frames, {} decoded, {} undecodable, {} detected, {:.1} s ({:.1}x real time); {} picture(s) in {}",
        a.clip.display(),
        stats.duration_s,
        stats.frames,
        stats.decoded,
        stats.decode_errors,
        stats.detected,
        stats.elapsed_s,
        stats.duration_s / stats.elapsed_s.max(1e-9),
        written,
        display(&dir)
    );
    Ok(())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

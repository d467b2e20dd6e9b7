#!/usr/bin/python3
"""Load benchmark: N concurrent cameras from one local GStreamer RTSP server into dumpwatch.

For each (media, N) it starts scripts/rtsp_server.py with N paths, runs the release binary of
dumpwatch on them (keyframe mode), waits until every camera streams, then measures for a bounded
time: cameras connected, keyframes decoded per second, decode p50/p95 (from the
dumpwatch_decode_seconds histogram), drops by reason, dumpwatch's CPU (cores) and peak RSS.

    scripts/bench_load.py                          # 8, 32, 77 cameras x vtest720, vtest360, 60 s each
    scripts/bench_load.py --cameras 77 --media vtest720 --seconds 30

Needs `cargo build --release` and scripts/setup.sh. Prints one row per run and a Markdown table.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from procstat import TOKEN, TOKEN_ENV, cpu_seconds, free_port, get_json, get_text, peak_rss_mb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_metrics(text):
    """{(name, frozenset(labels)): value}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        if "{" in head:
            name, labels = head.split("{", 1)
            pairs = []
            for part in labels.rstrip("}").split(","):
                if part:
                    k, v = part.split("=", 1)
                    pairs.append((k, v.strip('"')))
            key = (name, frozenset(pairs))
        else:
            key = (head, frozenset())
        out[key] = float(value)
    return out


def total(m, name, **want):
    return sum(v for (n, labels), v in m.items() if n == name and all((k, w) in labels for k, w in want.items()))


def histogram_quantiles(before, after, name, qs):
    buckets = []
    for (n, labels), v in after.items():
        if n == name + "_bucket":
            le = dict(labels)["le"]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets.append((bound, v - before.get((n, labels), 0.0)))
    buckets.sort()
    count = buckets[-1][1] if buckets else 0
    result = []
    for q in qs:
        if count == 0:
            result.append(float("nan"))
            continue
        target, prev_bound, prev_count = q * count, 0.0, 0.0
        for bound, c in buckets:
            if c >= target:
                if bound == float("inf"):
                    result.append(prev_bound)
                else:
                    frac = (target - prev_count) / (c - prev_count) if c > prev_count else 1.0
                    result.append(prev_bound + (bound - prev_bound) * frac)
                break
            prev_bound, prev_count = bound, c
    return result


def run_one(binary, media, n, seconds, spread, keyframe_interval):
    media_file = os.path.join(ROOT, "target", "media", media + ".h264")
    tmp = tempfile.mkdtemp(prefix="dw-bench-")
    args = ["/usr/bin/python3", os.path.join(ROOT, "scripts", "rtsp_server.py"), "--port", "0"]
    for i in range(n):
        args += ["--h264", f"c{i}={media_file}"]
    server = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    if not line.startswith("READY"):
        raise SystemExit(f"RTSP server failed to start: {line!r}")
    port = int(line.strip().split("=")[1])
    cams = os.path.join(tmp, "cameras.toml")
    with open(cams, "w") as f:
        for i in range(n):
            f.write(f'[[cameras]]\nid = "c{i:02d}"\nurl = "rtsp://127.0.0.1:{port}/c{i}"\n\n')
    svc_cfg = os.path.join(tmp, "dumpwatch.toml")
    with open(svc_cfg, "w") as f:
        f.write(f'cameras_file = "cameras.toml"\n[ingest]\nstartup_spread_s = {spread}\n'
                f'[decode]\nmin_keyframe_interval_s = {keyframe_interval}\n'
                f'[api]\ntoken_env = "{TOKEN_ENV}"\n')
    http = free_port()
    env = dict(os.environ, RUST_LOG="warn", **{TOKEN_ENV: TOKEN})
    svc = subprocess.Popen([binary, "run", "--config", svc_cfg, "--listen", f"127.0.0.1:{http}"], env=env,
                           stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "dumpwatch.log"), "w"))
    base = f"http://127.0.0.1:{http}"
    try:
        deadline = time.time() + spread + 60
        streaming = 0
        while time.time() < deadline:
            time.sleep(1)
            try:
                cams_json = get_json(base + "/api/v1/cameras")
            except OSError:
                continue
            streaming = sum(1 for c in cams_json if c["state"] == "streaming" and c["keyframes_received"] > 0)
            if streaming == n:
                break
        time.sleep(3)  # let the last connects settle into their GOP rhythm
        m0, c0, t0 = parse_metrics(get_text(base + "/metrics")), cpu_seconds(svc.pid), time.time()
        s0 = cpu_seconds(server.pid)
        time.sleep(seconds)
        m1, c1, t1 = parse_metrics(get_text(base + "/metrics")), cpu_seconds(svc.pid), time.time()
        s1 = cpu_seconds(server.pid)
        cams_json = get_json(base + "/api/v1/cameras")
        connected = sum(1 for c in cams_json if c["state"] == "streaming")
        elapsed = t1 - t0
        decoded = total(m1, "dumpwatch_frames_total", stage="decoded") - total(m0, "dumpwatch_frames_total", stage="decoded")
        received = total(m1, "dumpwatch_frames_total", stage="received") - total(m0, "dumpwatch_frames_total", stage="received")
        drops = {}
        for reason in ["before_keyframe", "decode_busy", "decode_error", "superseded", "background_busy"]:
            drops[reason] = int(total(m1, "dumpwatch_frames_dropped_total", reason=reason)
                                - total(m0, "dumpwatch_frames_dropped_total", reason=reason))
        p50, p95 = histogram_quantiles(m0, m1, "dumpwatch_decode_seconds", [0.5, 0.95])
        reconnects = int(total(m1, "dumpwatch_camera_reconnects_total"))
        return {
            "media": media, "cameras": n, "keyframe_interval_s": keyframe_interval, "connected": connected, "seconds": round(elapsed, 1),
            "frames_per_s": received / elapsed, "keyframes_decoded_per_s": decoded / elapsed,
            "decode_p50_ms": p50 * 1e3, "decode_p95_ms": p95 * 1e3, "drops": drops, "reconnects": reconnects,
            "cpu_cores": (c1 - c0) / elapsed, "peak_rss_mb": peak_rss_mb(svc.pid),
            "server_cpu_cores": (s1 - s0) / elapsed,
        }
    finally:
        svc.send_signal(signal.SIGTERM)
        try:
            svc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            svc.kill()
        server.kill()
        server.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", default="8,32,77")
    p.add_argument("--media", default="vtest720,vtest360")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--spread", type=float, default=None, help="startup_spread_s (default: N/15 s)")
    p.add_argument("--keyframe-interval", type=float, default=0.0,
                   help="decode.min_keyframe_interval_s (0 = decode every keyframe)")
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "dumpwatch"))
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    if not os.path.exists(a.binary):
        raise SystemExit(f"{a.binary} missing: run cargo build --release first")
    medias = a.media.split(",")
    subprocess.run([os.path.join(ROOT, "scripts", "make_media.sh"), os.path.join(ROOT, "target", "media")] + medias, check=True)
    rows = []
    for media in medias:
        for n in [int(x) for x in a.cameras.split(",")]:
            spread = a.spread if a.spread is not None else max(1.0, n / 15)
            r = run_one(a.binary, media, n, a.seconds, spread, a.keyframe_interval)
            rows.append(r)
            print(json.dumps(r), flush=True)
    print()
    print("| media | cameras | keyframe interval | connected | frames/s in | keyframes decoded/s | decode p50 | decode p95 "
          "| unplanned drops | reconnects | dumpwatch CPU (cores) | peak RSS | RTSP server CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        unplanned = sum(r["drops"][k] for k in ("decode_busy", "decode_error", "superseded", "background_busy"))
        print(f"| {r['media']} | {r['cameras']} | {r['keyframe_interval_s']:g} s | {r['connected']} | {r['frames_per_s']:.0f} "
              f"| {r['keyframes_decoded_per_s']:.1f} | {r['decode_p50_ms']:.1f} ms | {r['decode_p95_ms']:.1f} ms "
              f"| {unplanned} | {r['reconnects']} | {r['cpu_cores']:.2f} | {r['peak_rss_mb']:.0f} MB "
              f"| {r['server_cpu_cores']:.2f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())

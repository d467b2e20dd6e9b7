#!/usr/bin/python3
"""Live scale check: 77 cameras on one box, scored by the incidents the city system received.

Starts, all on loopback: the local GStreamer RTSP server (scripts/rtsp_server.py) with N "busy"
cameras that loop scenario clips of a labelled dataset (with their zones) and the rest "idle"
cameras that show a static street with temporal sensor noise (1280x720, 15 fps, 2 Mb/s, 2 s GOP,
like a city camera at night); the reference receiver (`dumpwatch receiver`); and dumpwatch itself
with embedded defaults. It then

- scores the incidents the receiver accepted against labels.toml, first pass of each clip only:
  a dumping is *on time* when its incident was delivered within dwell + 15 s of the put-down; an
  incident that matches no label (or any incident of an idle camera) is a false alarm;
- prints dumpwatch's CPU (cores) and peak RSS, detections per second, and each camera's analysis
  gap (seconds between analysed pictures, once analysed: the largest gap or wait seen while
  polling the API every 2 s), for busy and idle cameras, and how long after start every camera
  had been analysed once.

    scripts/scale_check.py                                 # 77 cameras, 8 dev clips at 720p
    scripts/scale_check.py --dataset DIR --busy 8          # another labelled set (MP4, H.264 or H.265)
    scripts/scale_check.py --codec h265 --dataset DIR265   # H.265 cameras (idle streams and clips)
    scripts/scale_check.py --sub-streams 640x360           # every camera with an analysis sub-stream
    scripts/scale_check.py --cameras 20 --busy 4 --json out.json
    scripts/scale_check.py --api-clients 64                # and 64 clients hammering the API
    scripts/scale_check.py --api-clients 64 --set api.nice=0   # ... served at the pipeline's priority

--sub-streams WxH gives every camera a second path, its sub-stream (the same picture scaled to
WxH, same frame rate and GOP, --sub-bitrate), as `analysis_url`: dumpwatch analyses the
sub-streams and only records the main streams.

Without --dataset the dev set is made at 1280x720, 15 fps, 2 s GOP under target/scale/ (once).
Clips with labelled events are served first. Needs `cargo build --release` and scripts/setup.sh.
Run by hand (a few minutes), never in CI: it measures, it does not pass or fail.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from datetime import datetime

from procstat import TOKEN, TOKEN_ENV, authorized, cpu_seconds, free_port, get_json, get_text, peak_rss_mb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALE = os.path.join(ROOT, "target", "scale")
VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
X264 = "keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1:aud=1"
ENCODERS = {"h264": ("libx264", "-x264-params", "h264"), "h265": ("libx265", "-x265-params", "hevc")}
DWELL_S = 30.0
ON_TIME_S = DWELL_S + 15.0


def sh(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"scale_check: {' '.join(cmd[:4])}... failed:\n{r.stderr[-2000:]}")
    return r.stdout


def metric_values(text, name):
    """{labels-dict-as-tuple: value} of one metric."""
    out = {}
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, value = line.rsplit(" ", 1)
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', head)))
        out[labels] = float(value)
    return out


def parse_time(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


# --- media -------------------------------------------------------------------------------------

def idle_media(size, fps, gop_s, bitrate, codec="h264"):
    """A static street (vtest.avi's median background, its vehicles cropped out) with temporal
    sensor noise, looped 20 s."""
    os.makedirs(SCALE, exist_ok=True)
    w, h = size.split("x")
    out = os.path.join(SCALE, f"idle_{size}_{fps}fps_{bitrate}.{codec}")
    if os.path.exists(out):
        return out
    bg = os.path.join(SCALE, "street_background.png")
    if not os.path.exists(bg):
        if not os.path.exists(VTEST):
            raise SystemExit(f"{VTEST} missing: run scripts/setup.sh (Debian package opencv-doc)")
        print("scale_check: making the idle street (median of vtest.avi)...", flush=True)
        tmp = os.path.join(SCALE, "median%03d.png")
        sh(["ffmpeg", "-loglevel", "error", "-y", "-i", VTEST, "-vf",
            "select='not(mod(n\\,12))',tmedian=radius=30", "-vsync", "0", tmp])
        frames = sorted(f for f in os.listdir(SCALE) if f.startswith("median"))
        os.replace(os.path.join(SCALE, frames[len(frames) // 2]), bg)
        for f in frames:
            if os.path.exists(os.path.join(SCALE, f)):
                os.remove(os.path.join(SCALE, f))
    gop = round(gop_s * fps)
    encoder, params, fmt = ENCODERS[codec]
    sh(["ffmpeg", "-loglevel", "error", "-y", "-loop", "1", "-i", bg, "-vf",
        f"crop=540:304:0:90,scale={w}:{h},noise=alls=5:allf=t,format=yuv420p", "-r", str(fps),
        "-t", "20", "-c:v", encoder, "-preset", "veryfast", "-b:v", bitrate, "-profile:v", "main",
        params, X264.format(gop=gop) + (":log-level=error" if codec == "h265" else ""),
        "-f", fmt, out + ".tmp"])
    os.replace(out + ".tmp", out)
    return out


def dev_dataset(size, fps, gop_s):
    out = os.path.join(SCALE, f"dev_{size}_{fps}fps")
    if not os.path.exists(os.path.join(out, "labels.toml")):
        print(f"scale_check: making the dev scenario set at {size}, {fps} fps (a few minutes)...",
              flush=True)
        sh([sys.executable, os.path.join(ROOT, "scripts", "make_scenarios.py"), out,
            "--size", size, "--fps", str(fps), "--gop-s", str(gop_s)])
    return out


def clip_codec(mp4):
    """`h264` or `h265`: the codec of a clip's video track."""
    name = sh(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name",
               "-of", "default=nw=1:nk=1", mp4]).strip()
    return {"h264": "h264", "hevc": "h265"}.get(name) or sys.exit(f"{mp4}: codec {name!r} is neither H.264 nor H.265")


def annex_b(mp4, dest_dir):
    """The clip's video as an Annex B stream (what the RTSP server loops), its codec and frame
    rate and duration."""
    os.makedirs(dest_dir, exist_ok=True)
    codec = clip_codec(mp4)
    out = os.path.join(dest_dir, os.path.basename(mp4).rsplit(".", 1)[0] + "." + codec)
    if not os.path.exists(out):
        bsf, fmt = {"h264": ("h264_mp4toannexb", "h264"), "h265": ("hevc_mp4toannexb", "hevc")}[codec]
        sh(["ffmpeg", "-loglevel", "error", "-y", "-i", mp4, "-c:v", "copy", "-bsf:v", bsf, "-an",
            "-f", fmt, out + ".tmp"])
        os.replace(out + ".tmp", out)
    probe = json.loads(sh(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                           "stream=r_frame_rate:format=duration", "-of", "json", mp4]))
    num, den = probe["streams"][0]["r_frame_rate"].split("/")
    return out, codec, round(int(num) / int(den)), float(probe["format"]["duration"])


def sub_stream(annexb, codec, fps, size, gop_s, bitrate):
    """A camera's sub-stream: its Annex B stream scaled to `size` (H.264, same rate and GOP)."""
    w, h = size.split("x")
    out = f"{annexb.rsplit('.', 1)[0]}_sub{size}.h264"
    if not os.path.exists(out):
        gop = round(gop_s * fps)
        sh(["ffmpeg", "-loglevel", "error", "-y", "-r", str(fps), "-f", "hevc" if codec == "h265" else "h264",
            "-i", annexb, "-vf", f"scale={w}:{h}", "-c:v", "libx264", "-preset", "veryfast", "-b:v", bitrate,
            "-profile:v", "main", "-x264-params", X264.format(gop=gop), "-f", "h264", out + ".tmp"])
        os.replace(out + ".tmp", out)
    return out


# --- the run -----------------------------------------------------------------------------------

def histogram_p95(text0, text1, name):
    """The 95th percentile of a Prometheus histogram over the interval between two scrapes (the
    upper bound of the bucket it falls in), in seconds; None without observations."""
    def buckets(text):
        out = {}
        for line in text.splitlines():
            m = re.match(name + r'_bucket\{le="([^"]+)"\} (\S+)', line)
            if m:
                out[float(m.group(1))] = float(m.group(2))
        return out
    b0, b1 = buckets(text0), buckets(text1)
    delta = sorted((le, b1[le] - b0.get(le, 0.0)) for le in b1)
    if not delta or delta[-1][1] <= 0:
        return None
    total = delta[-1][1]
    return next(le for le, n in delta if n >= 0.95 * total)


class ApiLoad:
    """N client threads that alternate, as fast as answers come, between a random camera's
    latest.jpg thumbnail (the dashboard's request) and the incident feed's first page. They run
    in a process of their own at nice `nice` (the operations center's browsers are on other
    machines; on this one they compete with dumpwatch for the same cores), whose CPU time is
    reported with the figures."""

    def __init__(self, base, camera_ids, clients, until, nice=0):
        import multiprocessing
        self.base, self.ids, self.clients, self.until, self.nice = base, camera_ids, clients, until, nice
        ctx = multiprocessing.get_context("fork")
        self.queue = ctx.Queue()
        self.process = ctx.Process(target=self.run, daemon=True)
        self.result = {"latencies": [], "errors": 0, "cpu_s": 0.0}

    def start(self):
        if self.clients:
            self.process.start()

    def join(self):
        if self.clients:
            self.result = self.queue.get(timeout=60)
            self.process.join(timeout=10)

    def run(self):
        os.nice(self.nice)
        self.latencies, self.errors, self.lock = [], 0, threading.Lock()
        threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(self.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        times = os.times()
        with self.lock:
            self.queue.put({"latencies": list(self.latencies), "errors": self.errors,
                            "cpu_s": times.user + times.system})

    def client(self, i):
        import random
        import urllib.request
        rng = random.Random(i)
        n = 0
        while time.time() < self.until:
            n += 1
            if n % 2:
                url = f"{self.base}/api/v1/cameras/{rng.choice(self.ids)}/latest.jpg?width=320"
            else:
                url = f"{self.base}/api/v1/incidents?limit=50"
            t = time.time()
            try:
                with urllib.request.urlopen(authorized(url), timeout=30) as r:
                    r.read()
                ok = True
            except OSError as e:
                # 404: a camera without a picture yet; an answer all the same.
                ok = getattr(e, "code", None) == 404
            with self.lock:
                if ok:
                    self.latencies.append(time.time() - t)
                else:
                    self.errors += 1

    def figures(self, elapsed):
        lat = sorted(self.result["latencies"])
        return {"clients": self.clients, "clients_nice": self.nice, "requests": len(lat),
                "requests_per_s": round(len(lat) / elapsed, 1),
                "p95_ms": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1) if lat else None,
                "errors": self.result["errors"],
                "clients_cores": round(self.result["cpu_s"] / elapsed, 2)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cameras", type=int, default=77)
    p.add_argument("--busy", type=int, default=8, help="cameras that loop scenario clips")
    p.add_argument("--dataset", help="labelled dataset (labels.toml + MP4 clips); default: dev at 720p")
    p.add_argument("--clips", help="comma-separated clip name prefixes to serve (default: labelled ones first)")
    p.add_argument("--size", default="1280x720", help="idle cameras' (and the default dataset's) picture size")
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--gop-s", type=float, default=2.0)
    p.add_argument("--bitrate", default="2M", help="idle cameras' bit rate (x264 -b:v)")
    p.add_argument("--codec", choices=["h264", "h265"], default="h264",
                   help="idle cameras' codec (busy cameras keep their clips' codec)")
    p.add_argument("--sub-streams", metavar="WxH",
                   help="give every camera a sub-stream of this size as analysis_url")
    p.add_argument("--sub-bitrate", default="512k", help="sub-streams' bit rate")
    p.add_argument("--spread", type=float, default=10.0, help="ingest.startup_spread_s")
    p.add_argument("--extra-seconds", type=float, default=20.0,
                   help="run this long after the last clip's first pass ends (with --busy 0: the "
                        "whole measurement)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="a line for dumpwatch.toml, e.g. decode.motion_gate=false (repeatable)")
    p.add_argument("--api-clients-nice", type=int, default=0, metavar="N",
                   help="nice value of the API clients' process (default 0: they compete with dumpwatch)")
    p.add_argument("--api-clients", type=int, default=0, metavar="N",
                   help="N clients hammer latest.jpg and the incident feed during the measurement")
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "dumpwatch"))
    p.add_argument("--keep", action="store_true", help="keep the run's directory")
    p.add_argument("--json", help="write the figures here")
    a = p.parse_args()
    if not os.path.exists(a.binary):
        raise SystemExit(f"{a.binary} missing: run cargo build --release first")
    if a.busy < 0 or a.busy > a.cameras:
        raise SystemExit("--busy cannot exceed --cameras")

    dataset = a.dataset or dev_dataset(a.size, a.fps, a.gop_s)
    with open(os.path.join(dataset, "labels.toml"), "rb") as f:
        labels = tomllib.load(f)["clip"]
    if a.clips:
        wanted = a.clips.split(",")
        chosen = [c for w in wanted for c in labels if os.path.basename(c["file"]).startswith(w)]
    else:
        chosen = [c for c in labels if c.get("event")] + [c for c in labels if not c.get("event")]
    chosen = chosen[:a.busy]
    if len(chosen) < a.busy:
        raise SystemExit(f"{dataset} has {len(chosen)} matching clips, --busy {a.busy}")
    idle_file = idle_media(a.size, a.fps, a.gop_s, a.bitrate, a.codec)

    tmp = tempfile.mkdtemp(prefix="dw-scale-")
    streams = os.path.join(SCALE, "annexb", os.path.basename(os.path.normpath(dataset)))
    busy = []
    for i, clip in enumerate(chosen):
        stream, codec, fps, duration = annex_b(os.path.join(dataset, clip["file"]), streams)
        busy.append({"id": f"busy{i:02d}", "clip": os.path.basename(clip["file"]), "file": stream,
                     "codec": codec, "fps": fps, "duration": duration, "zone": clip.get("zone"),
                     "events": clip.get("event", [])})
    idle = [{"id": f"idle{i:02d}", "file": idle_file, "codec": a.codec, "fps": a.fps}
            for i in range(a.cameras - a.busy)]
    cams = busy + idle
    if a.sub_streams:
        if not re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", a.sub_streams):
            raise SystemExit(f"--sub-streams {a.sub_streams!r}: expected WxH, e.g. 640x360")
        subs = {}
        for c in cams:
            if c["file"] not in subs:
                subs[c["file"]] = sub_stream(c["file"], c["codec"], c["fps"], a.sub_streams, a.gop_s,
                                             a.sub_bitrate)
            c["sub"] = subs[c["file"]]

    server_args = ["/usr/bin/python3", os.path.join(ROOT, "scripts", "rtsp_server.py"), "--port", "0",
                   "--announce"]
    for c in cams:
        server_args += [f"--{c['codec']}", f"{c['id']}={c['file']}:fps={c['fps']}"]
        if c.get("sub"):
            server_args += ["--h264", f"{c['id']}-sub={c['sub']}:fps={c['fps']}"]
    procs = []
    svc = None
    try:
        server = subprocess.Popen(server_args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(server)
        line = server.stdout.readline()
        if not line.startswith("READY"):
            raise SystemExit(f"RTSP server failed to start: {line!r}")
        rtsp_port = int(line.strip().split("=")[1])
        # Each path's time 0 (the server starts a path's file when its first client arrives).
        clip_start = {}

        def read_announcements():
            for line in server.stdout:
                parts = line.split()
                if len(parts) == 3 and parts[0] == "STARTED":
                    clip_start.setdefault(parts[1], float(parts[2]))

        threading.Thread(target=read_announcements, daemon=True).start()
        recv_port = free_port()
        recv_dir = os.path.join(tmp, "receiver")
        receiver = subprocess.Popen([a.binary, "receiver", "--listen", f"127.0.0.1:{recv_port}",
                                     "--dir", recv_dir], stdout=subprocess.DEVNULL,
                                    stderr=open(os.path.join(tmp, "receiver.log"), "w"))
        procs.append(receiver)

        with open(os.path.join(tmp, "cameras.toml"), "w") as f:
            for c in cams:
                f.write(f'[[cameras]]\nid = "{c["id"]}"\nurl = "rtsp://127.0.0.1:{rtsp_port}/{c["id"]}"\n')
                if c.get("sub"):
                    f.write(f'analysis_url = "rtsp://127.0.0.1:{rtsp_port}/{c["id"]}-sub"\n')
                if c.get("zone"):
                    f.write(f'[[cameras.zones]]\nname = "zone"\npolygon = {json.dumps(c["zone"])}\n')
                f.write("\n")
        sections = {}
        for s in a.set:
            key, value = s.split("=", 1)
            section, k = key.rsplit(".", 1) if "." in key else ("", key)
            sections.setdefault(section, []).append(f"{k} = {value}")
        with open(os.path.join(tmp, "dumpwatch.toml"), "w") as f:
            f.write('storage_dir = "storage"\ncameras_file = "cameras.toml"\n')
            for line in sections.pop("", []):
                f.write(line + "\n")
            model = [f'path = "{os.path.join(ROOT, "models", "yolov12n.onnx")}"'] + sections.pop("model", [])
            sections["model"] = model
            ingest = [f"startup_spread_s = {a.spread}"] + sections.pop("ingest", [])
            sections["ingest"] = ingest
            delivery = [f'endpoint = "http://127.0.0.1:{recv_port}/api/incidents"'] + sections.pop("delivery", [])
            sections["delivery"] = delivery
            sections["api"] = [f'token_env = "{TOKEN_ENV}"'] + sections.pop("api", [])
            for section, lines in sections.items():
                if section:
                    f.write(f"[{section}]\n" + "\n".join(lines) + "\n")
        http = free_port()
        base = f"http://127.0.0.1:{http}"
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn,dumpwatch=info"), **{TOKEN_ENV: TOKEN})
        env.setdefault("ORT_DYLIB_PATH", os.path.join(ROOT, "models", "onnxruntime", "libonnxruntime.so.1.31.1"))
        # A session of its own: a --binary wrapper (heaptrack, perf) and the dumpwatch it starts
        # are stopped together at the end.
        svc = subprocess.Popen([a.binary, "run", "--config", os.path.join(tmp, "dumpwatch.toml"),
                                "--listen", f"127.0.0.1:{http}"], env=env, stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(tmp, "dumpwatch.log"), "w"), start_new_session=True)
        procs.append(svc)
        print(f"scale_check: {a.cameras} cameras ({a.busy} busy: {', '.join(c['clip'] for c in busy)}); "
              f"run directory {tmp}", flush=True)

        # Start-up: wait until every camera streams.
        started = {}
        deadline = time.time() + a.spread + 90
        while time.time() < deadline and len(started) < len(cams):
            time.sleep(0.5)
            if svc.poll() is not None:
                raise SystemExit(f"dumpwatch exited ({svc.returncode}); see {tmp}/dumpwatch.log")
            try:
                status = get_json(base + "/api/v1/cameras")
            except OSError:
                continue
            for s in status:
                if s["state"] == "streaming" and s["id"] not in started:
                    started[s["id"]] = parse_time(s["since"])
        missing = [c["id"] for c in cams if c["id"] not in started]
        if missing:
            print(f"scale_check: never streaming: {', '.join(missing)}", flush=True)
        for c in busy:
            # The analysed stream's time 0 (the sub-stream's, when there is one).
            c["start"] = clip_start.get(c["id"] + "-sub" if c.get("sub") else c["id"])
        end = max([(c["start"] or time.time()) + c["duration"] for c in busy]
                  + [time.time()]) + a.extra_seconds

        m0, c0, t0 = get_text(base + "/metrics"), cpu_seconds(svc.pid), time.time()
        s0 = cpu_seconds(server.pid)
        load = ApiLoad(base, [c["id"] for c in cams], a.api_clients, until=end, nice=a.api_clients_nice)
        load.start()
        # The longest wait for analysis once a camera has been analysed (its analysis gap), and
        # how long after it started streaming a camera was analysed first (start-up).
        worst_wait = {c["id"]: 0.0 for c in cams}
        first_analysis = {}
        while time.time() < end:
            time.sleep(2)
            if svc.poll() is not None:
                raise SystemExit(f"dumpwatch exited ({svc.returncode}); see {tmp}/dumpwatch.log")
            try:
                for s in get_json(base + "/api/v1/cameras"):
                    wait = s.get("since_analysed_s")
                    if wait is None:
                        continue
                    if s["id"] not in first_analysis and s["id"] in started:
                        first_analysis[s["id"]] = time.time() - started[s["id"]]
                    gap = max(wait, s.get("analysis_gap_s") or 0.0)
                    worst_wait[s["id"]] = max(worst_wait[s["id"]], gap)
            except OSError:
                pass
        m1, c1, t1 = get_text(base + "/metrics"), cpu_seconds(svc.pid), time.time()
        s1 = cpu_seconds(server.pid)
        load.join()
        status = {s["id"]: s for s in get_json(base + "/api/v1/cameras")}
        rss = peak_rss_mb(svc.pid)
        time.sleep(2)  # the last deliveries
    finally:
        def signal_all(proc, sig):
            if proc is svc:
                try:
                    os.killpg(proc.pid, sig)  # the wrapper's children too
                except ProcessLookupError:
                    pass
            elif proc.poll() is None:
                proc.send_signal(sig)

        for proc in reversed(procs):
            signal_all(proc, signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                signal_all(proc, signal.SIGKILL)

    elapsed = t1 - t0
    detected0 = metric_values(m0, "dumpwatch_frames_total")
    detected1 = metric_values(m1, "dumpwatch_frames_total")

    def rate(cam, stage):
        key = tuple(sorted([("camera", cam), ("stage", stage)]))
        return (detected1.get(key, 0.0) - detected0.get(key, 0.0)) / elapsed

    drops0 = metric_values(m0, "dumpwatch_frames_dropped_total")
    drops1 = metric_values(m1, "dumpwatch_frames_dropped_total")
    drops = {}
    for key, v in drops1.items():
        reason = dict(key)["reason"]
        drops[reason] = drops.get(reason, 0) + int(v - drops0.get(key, 0.0))

    # Deliveries: the receiver's accepted bodies, with the time each was accepted.
    accepted_at = {}
    log = os.path.join(recv_dir, "received.jsonl")
    if os.path.exists(log):
        for line in open(log):
            r = json.loads(line)
            if r["outcome"] == "accepted":
                # Bodies are stored under the key made a safe file name (`:` → `_`).
                accepted_at.setdefault(re.sub(r"[^A-Za-z0-9._-]", "_", r["key"]), r["at"])
    bodies = []
    bodies_dir = os.path.join(recv_dir, "bodies")
    for name in sorted(os.listdir(bodies_dir)) if os.path.exists(bodies_dir) else []:
        body = json.load(open(os.path.join(bodies_dir, name)))
        key = name[:-5]
        bodies.append({"camera": body["camera"]["id"], "event": body["event"],
                       "at": parse_time(body["detected_at"]),
                       "delivered": accepted_at.get(key), "incident": body["incident_id"]})

    by_id = {c["id"]: c for c in busy}
    results, false_alarms = [], []
    for c in busy:
        c["matched"] = set()
    for b in sorted(bodies, key=lambda b: b["at"]):
        if b["event"] not in ("raised", "cleared"):
            continue
        kind = "dumping" if b["event"] == "raised" else "cleared"
        cam = by_id.get(b["camera"])
        if cam is None:
            if b["event"] == "raised":
                false_alarms.append({"camera": b["camera"], "clip_s": None})
            continue
        if cam["start"] is None:
            continue
        clip_s = b["at"] - cam["start"]
        if clip_s > cam["duration"]:
            continue  # a later pass of the loop
        match = next((i for i, e in enumerate(cam["events"])
                      if i not in cam["matched"] and e["kind"] == kind and e["start_s"] <= clip_s <= e["end_s"]), None)
        if match is None:
            if b["event"] == "raised":
                false_alarms.append({"camera": b["camera"], "clip": cam["clip"], "clip_s": round(clip_s, 1)})
            continue
        cam["matched"].add(match)
        e = cam["events"][match]
        delivered_after = (b["delivered"] - cam["start"] - e["start_s"]) if b["delivered"] else None
        results.append({"clip": cam["clip"], "kind": kind, "start_s": e["start_s"],
                        "raised_s": round(clip_s, 1),
                        "delivered_after_s": round(delivered_after, 1) if delivered_after else None})
    missed = [{"clip": c["clip"], "kind": e["kind"], "start_s": e["start_s"]}
              for c in busy for i, e in enumerate(c["events"]) if i not in c["matched"]]
    dumpings = [r for r in results if r["kind"] == "dumping"]
    on_time = [r for r in dumpings if r["delivered_after_s"] is not None and r["delivered_after_s"] <= ON_TIME_S]
    labelled_dumpings = sum(1 for c in busy for e in c["events"] if e["kind"] == "dumping")

    def gaps(group):
        waits = sorted(worst_wait[c["id"]] for c in group)
        det = [rate(c["id"], "detected") for c in group]
        last_gap = [status.get(c["id"], {}).get("analysis_gap_s") for c in group]
        firsts = [first_analysis.get(c["id"]) for c in group]
        return {
            "cameras": len(group),
            "first_analysis_s_max": round(max(f for f in firsts if f is not None), 1)
            if any(f is not None for f in firsts) else None,
            "never_analysed": sum(1 for f in firsts if f is None),
            "detections_per_s_each_min": round(min(det), 3) if det else None,
            "detections_per_s_each_mean": round(sum(det) / len(det), 3) if det else None,
            "worst_wait_s_max": round(waits[-1], 1) if waits else None,
            "worst_wait_s_median": round(waits[len(waits) // 2], 1) if waits else None,
            "last_gap_s_max": max((g for g in last_gap if g is not None), default=None),
        }

    out = {
        "cameras": a.cameras, "busy": a.busy, "dataset": dataset, "seconds": round(elapsed, 1),
        "dumpwatch_cpu_cores": round((c1 - c0) / elapsed, 2),
        "rtsp_server_cpu_cores": round((s1 - s0) / elapsed, 2),
        "dumpwatch_peak_rss_mb": round(rss),
        "detections_per_s": round(sum(rate(c["id"], "detected") for c in cams), 2),
        "decoded_per_s": round(sum(rate(c["id"], "decoded") for c in cams), 1),
        "drops": drops,
        "busy_cameras": gaps(busy), "idle_cameras": gaps(idle),
        "reconnects": int(sum(metric_values(m1, "dumpwatch_camera_reconnects_total").values())),
        "dumpings_labelled": labelled_dumpings, "dumpings_raised": len(dumpings),
        "dumpings_on_time": len(on_time), "false_alarms": false_alarms, "missed": missed,
        "events": results, "settings": a.set,
        "frame_age_p95_s": histogram_p95(m0, m1, "dumpwatch_frame_age_seconds"),
        "api_load": load.figures(elapsed) if a.api_clients else None,
    }
    print(json.dumps(out, indent=2))
    print()
    print(f"dumpings delivered within dwell + 15 s: {len(on_time)} of {labelled_dumpings} "
          f"(raised {len(dumpings)}); false alarms: {len(false_alarms)}")
    bc, ic = out["busy_cameras"], out["idle_cameras"]
    print(f"dumpwatch: {out['dumpwatch_cpu_cores']} cores, peak RSS {out['dumpwatch_peak_rss_mb']} MB, "
          f"{out['detections_per_s']} detections/s, {out['decoded_per_s']} pictures decoded/s "
          f"(RTSP server {out['rtsp_server_cpu_cores']} cores)")
    print(f"busy cameras: detections/s each min {bc['detections_per_s_each_min']} mean "
          f"{bc['detections_per_s_each_mean']}; longest analysis gap {bc['worst_wait_s_max']} s")
    if idle:
        print(f"idle cameras: detections/s each mean {ic['detections_per_s_each_mean']}; longest analysis "
              f"gap {ic['worst_wait_s_max']} s (median camera {ic['worst_wait_s_median']} s); first analysed "
              f"within {ic['first_analysis_s_max']} s of streaming, {ic['never_analysed']} never")
    print(f"frame age p95 (capture to detections): {out['frame_age_p95_s']} s")
    if out["api_load"]:
        al = out["api_load"]
        print(f"API load: {al['clients']} clients, {al['requests_per_s']} requests/s, p95 {al['p95_ms']} ms, "
              f"{al['errors']} errors; the clients ran on this machine too, at nice {al['clients_nice']}, "
              f"using {al['clients_cores']} cores")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    if not a.keep:
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Builds scenario clips of streets other than vtest's square, for `dumpwatch eval` (issue 22).

Usage: scripts/make_scenes.py OUT_DIR [--set dev|holdout] [--only NAME_PART]

Every other scenario set is vtest.avi's square. Here the scene is a real photo that a Debian
package ships (a cobbled lane and a lawn from opencv-doc, a field and a beach from darknet), and
the people in it are vtest.avi's real pedestrians, cut out of the footage against its median
background (frame minus median, cleaned up, soft edges) and composited onto the photo, scaled
to the scene's ground. The objects are make_scenarios.py's sprites, put down where and when a
pedestrian walks by (positions and times in vtest's pixels and seconds, carried through the same
transform as the pedestrians). On top, what real streets add:

- shake: every picture shifted by a random offset of up to `shake` pixels each way (a pole in
  the wind), objects and people included;
- wind in trees: real footage of a tree in the wind (opencv-doc's tree.avi), played forwards
  and backwards over the scene's trees;
- rain: streaks falling in every picture;
- night with headlights: the scene dark, a car's light pool sweeping across the ground;
- the day/night infrared switch: evening light, then the picture turns grey and jumps in brightness;
- a parked car that leaves (vtest's white van, there from the start, drives out of the picture);
- a person who stays next to a bag for two minutes and then takes it away.

The photo is still, so each picture gets the sensor's temporal noise. Writes OUT_DIR/labels.toml
and OUT_DIR/clips/*.mp4 (H.264, 768x576, 10 fps, 2 s GOP), like make_scenarios.py. The `dev`
scenes are the ones settings may be tuned on; the `holdout` scenes (other photos, other times
and places) are for checking that they carry over. Nothing here is committed: the photos and the
footage are Debian's, the clips are made at test time. Needs numpy (Debian's python3-numpy,
installed by scripts/setup.sh) and ffmpeg with libx264.
"""

import argparse
import os
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    # A python3 of its own (pyenv, a venv) may lack Debian's numpy: use the system's.
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    sys.exit("make_scenes: numpy is missing: install Debian's python3-numpy (scripts/setup.sh does)")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_scenarios  # noqa: E402  (the sprites, the label format)

OPENCV_DATA = "/usr/share/doc/opencv-doc/examples/data"
DARKNET_DATA = "/usr/share/darknet/data"
VTEST = os.path.join(OPENCV_DATA, "vtest.avi")
TREE = os.path.join(OPENCV_DATA, "tree.avi")
W, H, FPS = 768, 576, 10
MARGIN = 8  # the picture is cut from a world this much larger each way (room for the shake)
VTEST_FRAMES = 795

# vtest.avi's pedestrians walk in rows 130..400 (at 768x576); that band is what is composited.
BAND_TOP, BAND_BOTTOM = 130, 400
# One pedestrian alone in frame 300 (a cut-out that stays), and the parked white van.
STAYER = (300, 306, 202, 48, 100)  # frame, x, y, w, h
VAN = (648, 40, 80, 62)  # x, y, w, h in the median background

# Scenes: the photo, the part of it used (x, y, w, h in its pixels), and where vtest's pedestrian
# band lands on the scene (scale, x and y of the band's top-left corner, at 768x576).
SCENES = {
    # A cobbled lane between brick houses (opencv-doc).
    "lane": {"photo": os.path.join(OPENCV_DATA, "leuvenA.jpg"), "crop": None,
             "scale": 0.8, "at": (60, 350)},
    # A lawn and hedges in front of an office block, trees in the wind on the left (opencv-doc).
    "lawn": {"photo": os.path.join(OPENCV_DATA, "building.jpg"), "crop": (0, 150, 600, 450),
             "scale": 0.7, "at": (100, 390), "trees": (0, 200, 260, 220)},
    # Dry grass on a hillside, horses grazing (darknet).
    "field": {"photo": os.path.join(DARKNET_DATA, "horses.jpg"), "crop": (0, 120, 773, 392),
              "scale": 0.8, "at": (0, 340)},
    # The same lane's beguinage seen down another street (opencv-doc): hold-out only.
    "backstreet": {"photo": os.path.join(OPENCV_DATA, "leuvenB.jpg"), "crop": None,
                   "scale": 0.75, "at": (200, 370)},
    # A beach with kite surfers, wet sand in front (darknet): hold-out only.
    "beach": {"photo": os.path.join(DARKNET_DATA, "kite.jpg"), "crop": (0, 420, 640, 480),
              "scale": 0.8, "at": (0, 330)},
}

dump = make_scenarios.dump

# Each scenario: name, scene, objects (vtest pixels and seconds), labelled events, options.
DEV = [
    ("a01_lane_bag_left", "lane", [dump("bag", 338, 238, 9.0)], [("dumping", 9.0)], {}),
    ("a02_lane_shake6", "lane", [], [], {"shake": 6}),
    ("a03_lane_shake4_box_left", "lane", [dump("box", 515, 340, 23.0)], [("dumping", 23.0)],
     {"shake": 4}),
    ("a04_lane_night_headlights", "lane", [], [], {"night": 0.35, "headlights": 20.0}),
    ("a05_lane_night_sack_left", "lane", [dump("sack", 336, 262, 33.0)], [("dumping", 33.0)],
     {"night": 0.35, "headlights": 25.0}),
    ("a06_lane_van_leaves", "lane", [], [], {"van": (520, 300, 40.0)}),
    ("a07_lane_stays_with_bag", "lane", [], [], {"stayer": (430, 250, 15.0, 135.0), "length": 170.0}),
    ("b01_lawn_wind", "lawn", [], [], {}),
    ("b02_lawn_wind_bag_left", "lawn", [dump("bag", 515, 340, 23.0)], [("dumping", 23.0)], {}),
    ("b03_lawn_rain", "lawn", [], [], {"rain": 500}),
    ("b04_lawn_rain_box_left", "lawn", [dump("box", 515, 340, 23.0)], [("dumping", 23.0)],
     {"rain": 500}),
    ("b05_lawn_infrared", "lawn", [], [], {"infrared": 50.0}),
    ("b06_lawn_infrared_pending", "lawn", [dump("bag", 515, 340, 23.0)], [("dumping", 23.0)],
     {"infrared": 35.0}),
    ("b07_lawn_shake2_sack_left", "lawn", [dump("sack", 336, 262, 33.0)], [("dumping", 33.0)],
     {"shake": 2}),
    ("c01_field_shake4", "field", [], [], {"shake": 4, "offset": 30.0}),
    ("c02_field_bag_left", "field", [dump("bag", 600, 282, 13.0)], [("dumping", 13.0)], {}),
    ("c03_field_sack_cleared", "field", [dump("sack", 386, 290, 25.0, 85.0)],
     [("dumping", 25.0), ("cleared", 85.0)], {}),
    ("c04_field_infrared_box", "field", [dump("box", 598, 362, 61.0)], [("dumping", 61.0)],
     {"infrared": 20.0}),
    ("c05_field_rain_night", "field", [], [], {"rain": 300, "night": 0.4, "headlights": 30.0}),
]

# Other photos, places, times and combinations, never tuned on.
HOLDOUT = [
    ("p01_backstreet_bluebag_left", "backstreet", [dump("bluebag", 560, 250, 12.0)],
     [("dumping", 12.0)], {}),
    ("p02_backstreet_shake5", "backstreet", [], [], {"shake": 5, "offset": 20.0}),
    ("p03_backstreet_night_rubble", "backstreet", [dump("rubble", 250, 330, 15.0)],
     [("dumping", 15.0)], {"night": 0.3, "headlights": 15.0}),
    ("p04_backstreet_van_leaves", "backstreet", [], [], {"van": (80, 280, 60.0)}),
    ("p05_beach_bag_taken_back", "beach", [dump("bag", 150, 300, 20.0, 38.0)], [], {"rain": 400}),
    ("p06_beach_infrared", "beach", [], [], {"infrared": 30.0, "offset": 40.0}),
    ("p07_beach_shake3_box_left", "beach", [dump("box", 520, 180, 30.0)], [("dumping", 30.0)],
     {"shake": 3}),
    ("p08_beach_stays_with_sack", "beach", [], [], {"stayer": (200, 230, 30.0, 150.0),
                                                    "length": 180.0, "sprite": "sack"}),
]


# --- pictures through ffmpeg ------------------------------------------------------------------

def frames(args, w, h):
    """RGB pictures (h, w, 3) from an ffmpeg input, one at a time (ffmpeg is stopped when the
    caller has had enough, so its complaints about the closed pipe are not shown)."""
    proc = subprocess.Popen(["ffmpeg", "-v", "error", *args, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    size = w * h * 3
    count = 0
    try:
        while True:
            buf = proc.stdout.read(size)
            if len(buf) < size:
                if count == 0:
                    sys.exit(f"make_scenes: ffmpeg read no {w}x{h} picture from: {' '.join(args)}")
                break
            count += 1
            yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


def still(path, vf, w, h):
    """One picture, through ffmpeg's filter `vf` (which must make it w x h)."""
    return next(frames(["-i", path, "-vf", vf, "-frames:v", "1"], w, h)).astype(np.float32)


def sprite_rgba(kind, scale):
    """One of make_scenarios.py's sprites as float RGB and alpha in 0..1, scaled."""
    w, h, lum, alpha = make_scenarios.SPRITES[kind]
    g, b = make_scenarios.GREEN_BLUE[kind]
    sw, sh = max(2, round(w * scale)), max(2, round(h * scale))
    geq = f"geq=r='{lum}':g='({lum})*{g}':b='({lum})*{b}':a='{alpha}',scale={sw}:{sh}"
    proc = subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"color=c=black:s={w}x{h},format=rgba",
                           "-vf", geq, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgba", "-"],
                          stdout=subprocess.PIPE, check=True)
    px = np.frombuffer(proc.stdout, np.uint8).reshape(sh, sw, 4).astype(np.float32)
    return px[..., :3], px[..., 3] / 255.0


# --- image helpers ----------------------------------------------------------------------------

def box_mean(a, r):
    """Mean of a over a (2r+1)-square window, edges repeated."""
    k = 2 * r + 1
    p = np.pad(a.astype(np.float32), ((r + 1, r), (r + 1, r)), mode="edge")
    p[0, :] = 0
    p[:, 0] = 0
    c = p.cumsum(0).cumsum(1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def resize(img, w, h):
    """Bilinear resize of an (h, w[, c]) float array."""
    sy, sx = img.shape[0] / h, img.shape[1] / w
    ys = np.clip((np.arange(h) + 0.5) * sy - 0.5, 0, img.shape[0] - 1)
    xs = np.clip((np.arange(w) + 0.5) * sx - 0.5, 0, img.shape[1] - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, img.shape[0] - 1), np.minimum(x0 + 1, img.shape[1] - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    if img.ndim == 3:
        fy, fx = fy[..., None], fx[..., None]
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def paste(world, rgb, alpha, x, y):
    """Blends rgb with alpha (0..1) onto world, top-left at (x, y), clipped to the world."""
    h, w = alpha.shape
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(world.shape[1], x + w), min(world.shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    world[y0:y1, x0:x1] = world[y0:y1, x0:x1] * (1 - a) + rgb[y0 - y:y1 - y, x0 - x:x1 - x] * a


def foreground(frame, median):
    """Soft mask (0..1) of what differs from the median background: the pedestrians."""
    diff = np.abs(frame - median).max(axis=2)
    mask = box_mean(diff > 24, 1) > 0.99  # eroded: compression specks and the blended rim go
    # Soft edges falling off over the rim that erosion took: growing the mask back instead kept
    # a ring of vtest's light road around every pedestrian.
    return np.clip(box_mean(mask, 1), 0, 1)


def feather(w, h, ramp):
    """An alpha that is 1 inside and falls to 0 over `ramp` pixels at the edges."""
    ys = np.minimum(np.arange(h), np.arange(h)[::-1])[:, None]
    xs = np.minimum(np.arange(w), np.arange(w)[::-1])[None, :]
    return np.clip(np.minimum(ys, xs) / ramp, 0, 1).astype(np.float32)


# --- the footage ------------------------------------------------------------------------------

class Footage:
    """vtest.avi's median background, its pedestrians, the cut-outs, and tree.avi."""

    def __init__(self):
        print("make_scenes: the median background of vtest.avi...", flush=True)
        sample = [f.astype(np.float32) for i, f in enumerate(frames(["-i", VTEST], W, H)) if i % 8 == 0]
        self.median = np.median(np.stack(sample), axis=0)
        n, x, y, w, h = STAYER
        person = next(f for i, f in enumerate(frames(["-i", VTEST], W, H)) if i == n).astype(np.float32)
        self.stayer = (person[y:y + h, x:x + w], foreground(person, self.median)[y:y + h, x:x + w])
        x, y, w, h = VAN
        self.van = self.median[y:y + h, x:x + w]
        # The foliage of tree.avi's first 22 s (a hand comes into the picture after 23 s).
        trees = list(frames(["-t", "22", "-i", TREE, "-vf", "fps=10,crop=200:200:40:40"], 200, 200))
        self.band_medians = {}
        self.trees = [t.astype(np.float32) for t in trees + trees[-2:0:-1]]  # back and forth

    def pedestrians(self, offset, scale):
        """The band of vtest.avi from `offset` s, looped, as (picture, alpha) at `scale` (scaled by
        ffmpeg, the median background of the scaled band beside it)."""
        w, h = round(W * scale), round((BAND_BOTTOM - BAND_TOP) * scale)
        band = f"crop={W}:{BAND_BOTTOM - BAND_TOP}:0:{BAND_TOP},scale={w}:{h}:flags=bilinear"
        if scale not in self.band_medians:
            sample = [f.astype(np.float32) for i, f in enumerate(frames(["-i", VTEST, "-vf", band], w, h))
                      if i % 8 == 0]
            self.band_medians[scale] = np.median(np.stack(sample), axis=0)
        median = self.band_medians[scale]
        start = int(round(offset * FPS))
        for f in frames(["-stream_loop", "-1", "-i", VTEST, "-vf", f"select='gte(n\\,{start})',{band}"], w, h):
            f = f.astype(np.float32)
            yield f, foreground(f, median)


# --- one clip ---------------------------------------------------------------------------------

def make_clip(footage, out, scene_name, objects, opts, seed):
    scene = SCENES[scene_name]
    rng = np.random.default_rng(seed)
    ww, wh = W + 2 * MARGIN, H + 2 * MARGIN
    crop = scene["crop"]
    vf = (f"crop={crop[2]}:{crop[3]}:{crop[0]}:{crop[1]}," if crop else "") + f"scale={ww}:{wh}"
    background = still(scene["photo"], vf, ww, wh)
    scale, (bx, by) = scene["scale"], scene["at"]
    bx, by = bx + MARGIN, by + MARGIN

    def place(x, y):
        """A vtest position in the world."""
        return bx + round(x * scale), by + round((y - BAND_TOP) * scale)

    sprites = {}
    for o in objects:
        if o["sprite"] not in sprites:
            sprites[o["sprite"]] = sprite_rgba(o["sprite"], scale)
    trees = scene.get("trees")
    if trees:
        tx, ty, tw, th = trees
        tree_alpha = feather(tw, th, 40) * 0.85
        tree_frames = [resize(t, tw, th) for t in footage.trees]
    stayer = opts.get("stayer")
    if stayer:
        s_rgb, s_alpha = footage.stayer
        s_rgb, s_alpha = resize(s_rgb, round(s_rgb.shape[1] * scale), round(s_rgb.shape[0] * scale)), \
            resize(s_alpha, round(s_alpha.shape[1] * scale), round(s_alpha.shape[0] * scale))
        bag_rgb, bag_alpha = sprite_rgba(opts.get("sprite", "bag"), scale)
    van = opts.get("van")
    if van:
        van_rgb = resize(footage.van, round(footage.van.shape[1] * 1.6), round(footage.van.shape[0] * 1.6))
        van_alpha = feather(van_rgb.shape[1], van_rgb.shape[0], 3)
    noise = [rng.normal(0, 2.5, (H, W, 1)).astype(np.float32) for _ in range(12)]
    length = opts.get("length", 120.0)
    count = int(length * FPS)
    shake = opts.get("shake", 0)
    enc = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", str(FPS),
         "-i", "-", "-an", "-c:v", "libx264", "-x264-params", "keyint=20:min-keyint=20:bframes=0:scenecut=0",
         "-preset", "veryfast", "-crf", "24", "-pix_fmt", "yuv420p", "-movflags", "+faststart", out],
        stdin=subprocess.PIPE)
    walkers = footage.pedestrians(opts.get("offset", 0.0), scale)
    for n in range(count):
        t = n / FPS
        world = background.copy()
        if trees:
            k = n % len(tree_frames)
            paste(world, tree_frames[k], tree_alpha, tx + MARGIN, ty + MARGIN)
        if van:
            x, y, leaves = van
            vx = x + MARGIN - max(0.0, t - leaves) * 60.0  # drives off to the left at 6 m/s or so
            paste(world, van_rgb, van_alpha, round(vx), y + MARGIN)
        band, alpha = next(walkers)
        paste(world, band, alpha, bx, by)
        if stayer:
            x, y, start, end = stayer
            if start <= t < end:
                sway = int(rng.integers(-1, 2)) if n % 20 == 0 else 0
                px, py = place(x, y)
                paste(world, s_rgb, s_alpha, px + sway, py)
                paste(world, bag_rgb, bag_alpha, px + s_rgb.shape[1], py + s_rgb.shape[0] - bag_rgb.shape[0])
        for o in objects:
            end = o["end"] if o["end"] is not None else 1e9
            if o["start"] <= t < end:
                rgb, a = sprites[o["sprite"]]
                paste(world, rgb, a, *place(o["x"], o["y"]))
        ox, oy = (int(v) for v in rng.integers(-shake, shake + 1, 2)) if shake else (0, 0)
        pic = world[MARGIN + oy:MARGIN + oy + H, MARGIN + ox:MARGIN + ox + W]
        pic = light(pic, t, opts)
        rain = opts.get("rain")
        if rain:
            pic = rain_streaks(pic, rain, rng)
        pic = pic + noise[int(rng.integers(len(noise)))]
        enc.stdin.write(np.clip(pic, 0, 255).astype(np.uint8).tobytes())
    enc.stdin.close()
    if enc.wait() != 0:
        sys.exit(f"make_scenes: ffmpeg failed writing {out}")


def light(pic, t, opts):
    """Night with sweeping headlights, or the day/night infrared switch."""
    night = opts.get("night")
    if night:
        pic = pic * night
        period = opts.get("headlights")
        if period:
            phase = t % period
            if phase < 4.0:
                # A light pool crossing the lower half of the picture in 4 s, left to right.
                cx = -200 + (W + 400) * phase / 4.0
                ys, xs = np.ogrid[0:H, 0:W]
                pool = np.exp(-(((xs - cx) / 160.0) ** 2 + ((ys - H * 0.72) / 70.0) ** 2))
                pic = pic + pool[..., None] * np.array([190.0, 175.0, 140.0], np.float32)
    switch = opts.get("infrared")
    if switch is not None:
        if t < switch:
            # The evening: the switch comes at the end of a dusk of many minutes, which the
            # analyzer follows as slow light; the clip shows its last minutes.
            pic = pic * 0.6
        else:
            grey = pic @ np.array([0.299, 0.587, 0.114], np.float32)
            pic = np.repeat((grey * 0.8 + 30.0)[..., None], 3, axis=2)
    return pic


def rain_streaks(pic, count, rng):
    """`count` falling streaks, 10 to 18 pixels long, slanted by the wind."""
    pic = pic.copy()
    x0 = rng.uniform(0, W, count)
    y0 = rng.uniform(-18, H, count)
    length = rng.integers(10, 19, count)
    for j in range(18):
        live = j < length
        ys = (y0 + j).astype(int)[live]
        xs = (x0 + 0.3 * j).astype(int)[live]
        inside = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
        ys, xs = ys[inside], xs[inside]
        pic[ys, xs] = pic[ys, xs] * 0.6 + 200.0 * 0.4
    return pic


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--set", choices=["dev", "holdout"], default="dev")
    ap.add_argument("--only", help="make only the clips whose name contains this")
    a = ap.parse_args()
    for path in [VTEST, TREE] + [s["photo"] for s in SCENES.values()]:
        if not os.path.exists(path):
            sys.exit(f"make_scenes: {path} not found: install Debian's opencv-doc and darknet "
                     "(scripts/setup.sh does)")
    scenarios = {"dev": DEV, "holdout": HOLDOUT}[a.set]
    os.makedirs(os.path.join(a.out, "clips"), exist_ok=True)
    labels = [f"# Generated by scripts/make_scenes.py --set {a.set}: photos from opencv-doc and darknet, "
              "pedestrians from vtest.avi; h264, 768x576, 10 fps, keyframe every 2 s, crf 24.\n"]
    footage = None
    for i, (name, scene, objects, events, opts) in enumerate(scenarios):
        if a.only and a.only not in name:
            continue
        rel = f"clips/{name}.mp4"
        out = os.path.join(a.out, rel)
        if not os.path.exists(out):
            footage = footage or Footage()
            make_clip(footage, out + ".tmp.mp4", scene, objects, opts, seed=i + 1)
            os.replace(out + ".tmp.mp4", out)
        labels.append(make_scenarios.clip_labels(rel, events, opts))
        print(f"{rel}: {scene}, {len(objects)} object(s), {len(events)} labelled event(s)", flush=True)
    with open(os.path.join(a.out, "labels.toml"), "w") as f:
        f.write("".join(labels))


if __name__ == "__main__":
    main()

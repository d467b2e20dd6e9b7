#!/usr/bin/env python3
"""Builds the dumping scenario set for `dumpwatch eval` from real footage.

Usage: scripts/make_scenarios.py OUT_DIR [--set dev|holdout|stress|shake|view|small|live|demo] [--source vtest.avi]
                                 [--size WxH] [--fps N] [--gop-s S] [--crf N] [--codec h264|h265]

The footage is `vtest.avi` from Debian's opencv-doc package (a square with pedestrians and a
parked van; 768x576, 10 fps, 79.5 s), looped to 159 s and transcoded to H.264 MP4 (2 s GOP, no
B-frames; `--codec h265`: H.265 MP4 with an `hvc1` sample entry, as a city camera's main stream). Objects (a black bin bag, a cardboard box, a white sack) are drawn by ffmpeg and
composited where a real pedestrian walks at that moment; some stay (dumping), some are taken
away again before the dwell (negative), some are removed later (cleared). Others are untouched
footage, a global brightness change, or an object outside the watched zone.

Writes OUT_DIR/labels.toml and OUT_DIR/clips/*.mp4 in the format of docs/architecture.md. The
event windows end 60 s after the start: the time to alert is reported separately by eval.
The encoding options re-make a set the way other cameras would send it (another resolution, frame
rate, keyframe interval or compression) without changing its labels: objects are placed on the
768x576 footage first and the picture is scaled after, and zones are fractions of the picture.
Nothing here is committed: the footage is Debian's, the clips are made at test time.
Only the Python standard library and ffmpeg (with libx264 and libx265) are needed.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

SOURCE = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
LOOPED_S = 159.0

# Sprites: (width, height, r, g, b expression, alpha expression). Drawn with ffmpeg's geq.
ELLIPSE = "if(lte(pow((X-W/2)/(W/2),2)+pow((Y-H/2)/(H/2),2),1),255,0)"
SPRITES = {
    # A knotted black bin bag with a soft highlight.
    "bag": (44, 34, "22+14*random(1)+70*exp(-(pow(X-W*0.35,2)+pow(Y-H*0.35,2))/40)", ELLIPSE),
    # A cardboard box (brown, darker edges, a tape stripe).
    "box": (46, 36,
            "if(lt(abs(Y-H*0.3),2),200,if(lt(X,3)+gt(X,W-4)+lt(Y,3)+gt(Y,H-4),90,150))+10*random(1)",
            "255"),
    # A white woven sack.
    "sack": (40, 30, "225+20*random(1)-30*lt(mod(X+Y,6),1)", ELLIPSE),
    # A pile of rubble: grey-brown, lumpy, with a ragged outline (hold-out set only).
    "rubble": (62, 38, "95+50*random(1)",
               "if(lte(pow((X-W/2)/(W/2),2)+pow((Y-H)/(H*(0.75+0.25*sin(X/5))),2),1),255,0)"),
    # A blue plastic bag (hold-out set only).
    "bluebag": (50, 40, "30+10*random(1)+60*exp(-(pow(X-W*0.6,2)+pow(Y-H*0.3,2))/60)", ELLIPSE),
}
GREEN_BLUE = {"bag": ("1", "1"), "box": ("0.72", "0.45"), "sack": ("1", "0.95"),
              "rubble": ("0.92", "0.8"), "bluebag": ("2", "4")}

# Zone covering the paths of the square (the upper grass and the buildings excluded).
PATHS = [[0.0, 0.22], [1.0, 0.14], [1.0, 0.85], [0.0, 0.75]]
UPPER = [[0.0, 0.2], [1.0, 0.2], [1.0, 0.72], [0.0, 0.72]]


def dump(sprite, x, y, start, end=None):
    return {"sprite": sprite, "x": x, "y": y, "start": start, "end": end}


# Each scenario: name, objects, labelled events, options. Times are seconds in the clip;
# positions are the sprite's top-left corner in pixels, next to a pedestrian at that moment.
DEV = [
    ("s01_bag_left", [dump("bag", 338, 238, 9.0)], [("dumping", 9.0)], {}),
    ("s02_box_left", [dump("box", 515, 340, 23.0)], [("dumping", 23.0)], {"zone": PATHS}),
    ("s03_sack_left", [dump("sack", 336, 262, 33.0)], [("dumping", 33.0)], {}),
    ("s04_bag_picked_up", [dump("bag", 490, 272, 17.0, 29.0)], [], {}),
    ("s05_box_picked_up", [dump("box", 572, 298, 45.0, 57.0)], [], {"zone": PATHS}),
    ("s06_untouched", [], [], {}),
    ("s07_untouched_offset", [], [], {"offset": 20.0}),
    ("s08_light_change", [], [], {"light": [(50.0, -0.14), (110.0, 0.0)]}),
    ("s09_outside_zone", [dump("bag", 600, 470, 20.0)], [], {"zone": UPPER}),
    ("s10_two_dumpings", [dump("bag", 338, 238, 9.0), dump("box", 598, 362, 61.0)],
     [("dumping", 9.0), ("dumping", 61.0)], {}),
    ("s11_cleared", [dump("sack", 386, 290, 25.0, 85.0)], [("dumping", 25.0), ("cleared", 85.0)], {}),
    ("s12_bag_then_light", [dump("bag", 600, 282, 13.0)], [("dumping", 13.0)],
     {"light": [(90.0, -0.12)]}),
    ("s13_pile_grows", [dump("bag", 338, 238, 9.0), dump("bag", 380, 244, 70.0)], [("dumping", 9.0)], {}),
    ("s14_late_box", [dump("box", 386, 290, 105.0)], [("dumping", 105.0)], {"zone": PATHS}),
]

# A hold-out set, never tuned on: other objects, places, times and lights than DEV, for checking
# that settings chosen on DEV carry over (docs/evaluation.md, "Hold-out set").
HOLDOUT = [
    ("h01_rubble_left", [dump("rubble", 250, 330, 15.0)], [("dumping", 15.0)], {}),
    ("h02_bluebag_left", [dump("bluebag", 450, 400, 40.0)], [("dumping", 40.0)], {}),
    ("h03_bag_taken_back", [dump("bag", 150, 300, 20.0, 38.0)], [], {}),
    ("h04_brighter", [], [], {"light": [(40.0, 0.15), (100.0, 0.0)]}),
    ("h05_slow_dusk", [], [], {"offset": 30.0, "light": [(20.0, -0.25)], "ramp": 20.0}),
    ("h06_untouched_later", [], [], {"offset": 50.0}),
    ("h07_box_outside_zone", [dump("box", 100, 500, 30.0)], [], {"zone": UPPER}),
    ("h08_two_dumpings", [dump("sack", 560, 250, 12.0), dump("rubble", 300, 420, 75.0)],
     [("dumping", 12.0), ("dumping", 75.0)], {}),
    ("h09_box_cleared", [dump("box", 200, 420, 20.0, 90.0)], [("dumping", 20.0), ("cleared", 90.0)], {}),
    ("h10_bluebag_then_dark", [dump("bluebag", 520, 180, 30.0)], [("dumping", 30.0)],
     {"light": [(100.0, -0.2)]}),
]

# A stress set for the changes of light, never tuned on: steps at other times, both ways, several
# in a row, a slow dusk, and changes of light while an object is pending, abandoned, taken back or
# cleared (docs/evaluation.md, "Stress set").
STRESS = [
    ("x01_light_early", [], [], {"light": [(15.0, -0.14), (70.0, 0.0)]}),
    ("x02_darker_later", [], [], {"offset": 40.0, "light": [(30.0, -0.18), (90.0, 0.0)]}),
    ("x03_brighter_late", [], [], {"offset": 10.0, "light": [(80.0, 0.12)]}),
    ("x04_two_steps", [], [], {"light": [(35.0, -0.1), (60.0, -0.2), (120.0, 0.0)]}),
    ("x05_long_dusk", [], [], {"offset": 70.0, "light": [(10.0, -0.3)], "ramp": 30.0}),
    ("x06_dark_while_pending", [dump("bag", 338, 238, 9.0)], [("dumping", 9.0)],
     {"light": [(25.0, -0.15)]}),
    ("x07_sack_then_bright", [dump("sack", 336, 262, 33.0)], [("dumping", 33.0)],
     {"light": [(50.0, 0.12)]}),
    ("x08_box_light_back", [dump("box", 515, 340, 23.0)], [("dumping", 23.0)],
     {"zone": PATHS, "light": [(10.0, -0.12), (60.0, 0.0)]}),
    ("x09_taken_back_in_dark", [dump("bag", 490, 272, 17.0, 29.0)], [],
     {"light": [(5.0, -0.15)]}),
    ("x10_untouched_light", [], [], {"offset": 60.0, "light": [(45.0, -0.14), (100.0, 0.0)]}),
    ("x11_rubble_then_dark", [dump("rubble", 250, 330, 15.0)], [("dumping", 15.0)],
     {"light": [(70.0, -0.2)]}),
    ("x12_cleared_in_dark", [dump("sack", 386, 290, 25.0, 85.0)],
     [("dumping", 25.0), ("cleared", 85.0)], {"light": [(60.0, -0.14)]}),
]

# A pole in the wind (issue 22): every picture shifted by a random offset of up to `shake` pixels
# each way (at 576 lines), objects included, as a shaking camera sees the whole scene move.
# Three amplitudes, without an object (no incident may be raised) and with one (still raised).
SHAKE = [
    ("k01_shake2_untouched", [], [], {"shake": 2}),
    ("k02_shake4_untouched", [], [], {"offset": 30.0, "shake": 4}),
    ("k03_shake6_untouched", [], [], {"offset": 60.0, "shake": 6}),
    ("k04_shake2_bag_left", [dump("bag", 338, 238, 9.0)], [("dumping", 9.0)], {"shake": 2}),
    ("k05_shake4_box_left", [dump("box", 515, 340, 23.0)], [("dumping", 23.0)],
     {"zone": PATHS, "shake": 4}),
    ("k06_shake6_sack_left", [dump("sack", 336, 262, 33.0)], [("dumping", 33.0)], {"shake": 6}),
]

# The camera's view lost (issue 22): turned by about 20° (a fifth of the footage's width, the
# picture a 75 % window of it), turned and then back, or covered by a cloth. Each is labelled with
# its view change: the analyzer must say so within 60 s and raise nothing while it lasts.
VIEW = [
    ("v01_turned", [], [], {"turn": (40.0, None, 0.2), "view": ("moved", 40.0)}),
    ("v02_covered", [], [], {"cover": 40.0, "view": ("covered", 40.0)}),
    # A bag put down at 20 s (raised about 30 s after its owner leaves), the camera turned away
    # at 35 s: nothing raised.
    ("v03_turned_from_a_bag", [dump("bag", 338, 238, 20.0)], [], {"turn": (35.0, None, 0.2),
                                                                  "view": ("moved", 35.0)}),
    # Turned at 40 s, turned back at 90 s: home again, and still watched afterwards.
    ("v04_turned_and_back", [dump("box", 515, 340, 110.0)], [("dumping", 110.0)],
     {"turn": (40.0, 90.0, 0.2), "view": ("moved", 40.0), "zone": PATHS}),
]

# The small set used inside the test suite: short clips, for dwell_s = clear_after_s = 10.
# (The rubble sprite is shared with HOLDOUT: t05 guards the colour path, not a tuning target.)
SMALL = [
    ("t01_bag_left", [dump("bag", 338, 238, 9.0)], [("dumping", 9.0)], {"length": 45.0}),
    ("t02_bag_picked_up", [dump("bag", 490, 272, 17.0, 23.0)], [], {"length": 45.0}),
    ("t03_light_change", [], [], {"length": 45.0, "light": [(20.0, -0.14)]}),
    ("t04_cleared", [dump("sack", 386, 290, 25.0, 45.0)], [("dumping", 25.0), ("cleared", 45.0)],
     {"length": 75.0}),
    # Grey rubble on the lawn: about as bright as the grass, found by its colour.
    ("t05_rubble_on_grass", [dump("rubble", 250, 330, 9.0)], [("dumping", 9.0)], {"length": 40.0}),
    # The camera turned by about 20° at 15 s: said within the minute, nothing raised.
    ("t06_turned", [], [], {"length": 45.0, "turn": (15.0, None, 0.2), "view": ("moved", 15.0)}),
]

# Clips served as live cameras (end-to-end tests, demo): a bag left at 33 s, stays; the same bag
# there from the start and taken away at 20 s (the spot cleaned after a restart of the service);
# the camera turned by about 20° at 15 s and turned back at 45 s.
LIVE = [
    ("l01_bag_left", [dump("bag", 336, 262, 33.0)], [("dumping", 33.0)], {"length": 60.0}),
    ("l02_bag_taken", [dump("bag", 336, 262, 0.0, 20.0)], [], {"length": 60.0}),
    ("l03_turned_and_back", [], [], {"length": 60.0, "turn": (15.0, 45.0, 0.2),
                                     "view": ("moved", 15.0)}),
]

# The demo's eight cameras (scripts/demo.sh), each looped by the RTSP server. On d01 a bag is
# left at 60 s and stays until the clip loops (159 s): with the default dwell and clearing times
# (30 s) and the demo's short cooldown for that camera, a dumping is raised about every 2.7
# minutes and cleared after each loop.
DEMO = [
    ("d01_periodic_dumping", [dump("bag", 336, 262, 60.0)], [("dumping", 60.0)], {}),
    ("d02_square", [], [], {}),
    ("d03_square_later", [], [], {"offset": 20.0}),
    ("d04_bag_picked_up", [dump("bag", 490, 272, 17.0, 29.0)], [], {}),
    ("d05_evening_light", [], [], {"light": [(50.0, -0.14), (110.0, 0.0)]}),
    ("d06_square_evening", [], [], {"offset": 40.0, "light": [(0.0, -0.08)]}),
    ("d07_outside_zone", [dump("bag", 600, 470, 20.0)], [], {"zone": UPPER}),
    ("d08_square_night", [], [], {"offset": 60.0, "light": [(0.0, -0.2)]}),
]


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"make_scenarios: {' '.join(cmd[:3])}... failed:\n{r.stderr[-2000:]}")


def make_sprite(kind, path):
    w, h, lum, alpha = SPRITES[kind]
    g, b = GREEN_BLUE[kind]
    geq = f"geq=r='{lum}':g='({lum})*{g}':b='({lum})*{b}':a='{alpha}'"
    run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c=black:s={w}x{h},format=rgba",
         "-vf", geq, "-frames:v", "1", path])


def make_clip(source, out, objects, opts, sprites, enc):
    length = opts.get("length", LOOPED_S)
    inputs = ["-stream_loop", "1"]
    if "offset" in opts:
        inputs += ["-ss", str(opts["offset"])]
    inputs += ["-i", source]
    chain = "[0:v]format=yuv420p"
    lights = opts.get("light", [])
    if lights:
        # Brightness steps, each ramped over `ramp` seconds (default 1: a cloud, street lights).
        ramp = opts.get("ramp", 1.0)
        expr = "0"
        prev = 0.0
        for (t, level) in lights:
            expr = f"({expr})+({level}-({prev}))*clip((t-{t})/{ramp},0,1)"
            prev = level
        chain += f",eq=eval=frame:brightness='{expr}'"
    chain += "[v0]"
    filters = [chain]
    for i, o in enumerate(objects):
        inputs += ["-i", sprites[o["sprite"]]]
        end = o["end"] if o["end"] is not None else 100000
        filters.append(f"[v{i}][{i + 1}:v]overlay=x={o['x']}:y={o['y']}:enable='between(t,{o['start']},{end})'[v{i + 1}]")
    last = f"[v{len(objects)}]"
    shake = opts.get("shake")
    if shake:
        # A random offset per picture (seeded: the same clip every time), the picture cut to the
        # shifted window and scaled back to the footage's size.
        a = int(shake)
        filters.append(f"{last}crop=w=iw-{2 * a}:h=ih-{2 * a}:x='{a}+floor({a}*(2*random(1)-1)+0.5)'"
                       f":y='{a}+floor({a}*(2*random(2)-1)+0.5)',scale=768:576[shaken]")
        last = "[shaken]"
    turn = opts.get("turn")
    if turn:
        # A 75 % window of the footage, moved sideways by `share` of its width from `start` to
        # `end` (a camera turned, then turned back), scaled back to the footage's size.
        start, end, share = turn
        until = end if end is not None else 100000
        filters.append(f"{last}crop=w=iw*0.75:h=ih*0.75:x='iw*(0.02+{share}*between(t,{start},{until}))'"
                       f":y=ih*0.125,scale=768:576[turned]")
        last = "[turned]"
    cover = opts.get("cover")
    if cover is not None:
        # A dark cloth over the lens: 97 % opaque, with the sensor's noise.
        filters.append(f"{last}drawbox=x=0:y=0:w=iw:h=ih:color=0x1e1e1e@0.97:t=fill:enable='gte(t,{cover})',"
                       f"noise=alls=4:allf=t:enable='gte(t,{cover})'[covered]")
        last = "[covered]"
    # The camera's own encoding: scaled after the objects are placed, so positions stay those of
    # the footage; the keyframe interval is in seconds of the output frame rate.
    post = []
    if enc.size:
        post.append(f"scale={enc.size.replace('x', ':')}")
    if enc.fps:
        post.append(f"fps={enc.fps}")
    if post:
        filters.append(f"{last}{','.join(post)}[out]")
        last = "[out]"
    keyint = max(1, round(enc.gop_s * (enc.fps or 10.0)))
    gop = f"keyint={keyint}:min-keyint={keyint}:bframes=0:scenecut=0"
    if enc.codec == "h265":
        codec = ["-c:v", "libx265", "-x265-params", gop + ":log-level=error", "-tag:v", "hvc1"]
    else:
        codec = ["-c:v", "libx264", "-x264-params", gop]
    run(["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", ";".join(filters), "-map", last,
         "-t", str(length), "-an", *codec, "-preset", "veryfast", "-crf", str(enc.crf),
         "-pix_fmt", "yuv420p", "-movflags", "+faststart", out])


def toml_polygon(points):
    return "[" + ", ".join(f"[{x}, {y}]" for x, y in points) + "]"


def clip_labels(rel, events, opts):
    """A clip's entry in labels.toml: its file, its zone if not the whole frame, its labelled
    events (each matched within 60 s of its start) and the view change it shows, if any."""
    entry = f"\n[[clip]]\nfile = \"{rel}\"\n"
    if "zone" in opts:
        entry += f"zone = {toml_polygon(opts['zone'])}\n"
    for kind, start in events:
        entry += f"[[clip.event]]\nkind = \"{kind}\"\nstart_s = {start}\nend_s = {start + 60.0}\n"
    if "view" in opts:
        kind, start = opts["view"]
        entry += f"[clip.view]\nkind = \"{kind}\"\nstart_s = {start}\n"
    return entry


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--set", choices=["dev", "holdout", "stress", "shake", "view", "small", "live", "demo"],
                    default="dev")
    ap.add_argument("--source", default=SOURCE)
    ap.add_argument("--size", help="scale the clips to WxH (e.g. 1280x720) after placing the objects")
    ap.add_argument("--fps", type=float, help="output frame rate (the footage has 10)")
    ap.add_argument("--gop-s", type=float, default=2.0, help="keyframe interval in seconds (default 2)")
    ap.add_argument("--crf", type=int, default=24, help="x264/x265 quality, higher = more compression (default 24)")
    ap.add_argument("--codec", choices=["h264", "h265"], default="h264", help="video codec of the clips (default h264)")
    a = ap.parse_args()
    if a.size and not re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*", a.size):
        sys.exit(f"make_scenarios: --size {a.size!r}: expected WxH, e.g. 1280x720")
    if a.gop_s <= 0:
        sys.exit(f"make_scenarios: --gop-s {a.gop_s}: must be > 0")
    if a.fps is not None and a.fps <= 0:
        sys.exit(f"make_scenarios: --fps {a.fps}: must be > 0")
    if not 0 <= a.crf <= 51:
        sys.exit(f"make_scenarios: --crf {a.crf}: x264 and x265 take 0 to 51")
    if not os.path.exists(a.source):
        sys.exit(f"make_scenarios: {a.source} not found: install Debian's opencv-doc (scripts/setup.sh does)")
    scenarios = {"dev": DEV, "holdout": HOLDOUT, "stress": STRESS, "shake": SHAKE, "view": VIEW, "small": SMALL,
                 "live": LIVE, "demo": DEMO}[a.set]
    os.makedirs(os.path.join(a.out, "clips"), exist_ok=True)
    encoding = f"{a.codec}, size {a.size or '768x576'}, {a.fps or 10:g} fps, keyframe every {a.gop_s:g} s, crf {a.crf}"
    labels = [f"# Generated by scripts/make_scenarios.py --set {a.set}; footage: vtest.avi (opencv-doc); {encoding}.\n"]
    with tempfile.TemporaryDirectory() as tmp:
        sprites = {}
        for kind in SPRITES:
            sprites[kind] = os.path.join(tmp, f"{kind}.png")
            make_sprite(kind, sprites[kind])
        for name, objects, events, opts in scenarios:
            rel = f"clips/{name}.mp4"
            out = os.path.join(a.out, rel)
            if not os.path.exists(out):
                make_clip(a.source, out + ".tmp.mp4", objects, opts, sprites, a)
                os.replace(out + ".tmp.mp4", out)
            labels.append(clip_labels(rel, events, opts))
            print(f"{rel}: {len(objects)} object(s), {len(events)} labelled event(s)", flush=True)
    with open(os.path.join(a.out, "labels.toml"), "w") as f:
        f.write("".join(labels))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""A local RTSP server for dumpwatch's tests, demo and load benchmarks (GStreamer's RTSP server).

Serves any number of paths from one process. Each H.264 path loops an Annex B elementary stream
(made by scripts/make_media.sh) through `appsrc ! h264parse ! rtph264pay`, each H.265 path through
`appsrc ! h265parse ! rtph265pay`, paced at the file's frame rate. Media are shared: a client
that joins later starts mid-GOP, as with a real camera.

    /usr/bin/python3 scripts/rtsp_server.py --port 0 \
        --h264 cam1=target/media/a.h264 --h264 cam2=target/media/a.h264:fps=15 \
        --h265 cam4=target/media/a_h265.h265 \
        --mjpeg cam3 --user admin --password secret [--auth basic]

Prints `READY port=N` on stdout once it listens (port 0 picks a free port); with --announce, also
`STARTED NAME UNIX_TIME` each time a path starts its file from the beginning. Must run under Debian's
/usr/bin/python3 (the one with `gi`).
"""

import argparse
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


# NAL unit types per codec: header length, delimiter, types that start a unit after a slice
# (parameter sets, SEI), slice types.
CODECS = {
    "h264": {"header": 1, "kind": lambda b: b & 0x1F, "aud": 9, "prefix": (6, 7, 8), "slices": (1, 5)},
    "h265": {"header": 2, "kind": lambda b: (b >> 1) & 0x3F, "aud": 35, "prefix": (32, 33, 34, 39),
             "slices": tuple(range(0, 10)) + tuple(range(16, 22))},
}


def split_access_units(data, codec="h264"):
    """Splits an Annex B byte stream into access units (lists of NAL units joined back together).

    A new access unit starts at an access unit delimiter, at parameter sets/SEI that follow a
    slice, or at a slice that starts a picture (H.264 first_mb_in_slice 0, H.265
    first_slice_segment_in_pic_flag) when the current unit already has a slice.
    """
    c = CODECS[codec]
    starts = []
    i, n = 0, len(data)
    while True:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        begin = j - 1 if j > 0 and data[j - 1] == 0 else j
        starts.append((begin, j + 3))
        i = j + 3
    nals = []
    for k, (begin, payload) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else n
        nals.append((data[begin:end], c["kind"](data[payload]) if payload < n else -1, payload))
    units, current, has_slice = [], [], False
    for raw, kind, payload in nals:
        first = payload + c["header"]
        starts_picture = kind in c["slices"] and first < n and data[first] & 0x80
        boundary = kind == c["aud"] or (kind in c["prefix"] and has_slice) or (starts_picture and has_slice)
        if boundary and current:
            units.append(b"".join(current))
            current, has_slice = [], False
        current.append(raw)
        has_slice = has_slice or kind in c["slices"]
    if current:
        units.append(b"".join(current))
    if not units:
        raise SystemExit(f"no {codec.upper()} access units found")
    return units


class LoopingFactory(GstRtspServer.RTSPMediaFactory):
    """One path: loops the access units of a file (H.264 or H.265) at a fixed frame rate."""

    def __init__(self, units, fps, name=None, announce=False, codec="h264"):
        super().__init__()
        self.units = units
        self.fps = fps
        self.name = name
        self.announce = announce
        self.set_shared(True)
        self.set_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=true "
            f"caps=video/x-{codec},stream-format=byte-stream,alignment=au "
            f"! {codec}parse ! rtp{codec}pay name=pay0 pt=96 config-interval=-1 )"
        )
        self.connect("media-configure", self.on_media_configure)

    def on_media_configure(self, _factory, media):
        appsrc = media.get_element().get_by_name_recurse_up("src")
        state = {"next": 0, "src": appsrc, "alive": True}

        def push():
            if not state["alive"]:
                return False
            unit = self.units[state["next"] % len(self.units)]
            state["next"] += 1
            buf = Gst.Buffer.new_wrapped(unit)
            buf.duration = Gst.SECOND // self.fps
            ret = state["src"].emit("push-buffer", buf)
            if ret != Gst.FlowReturn.OK and ret != Gst.FlowReturn.FLUSHING:
                state["alive"] = False
            return state["alive"]

        def on_unprepared(_media):
            state["alive"] = False

        media.connect("unprepared", on_unprepared)
        GLib.timeout_add(max(1, round(1000 / self.fps)), push)
        if self.announce:
            # The file's time 0: scripts/scale_check.py places incidents in the clip with it.
            print(f"STARTED {self.name} {time.time():.3f}", flush=True)


def parse_spec(spec):
    """`name=file[:fps=N]` -> (name, file, fps)."""
    if "=" not in spec:
        raise SystemExit(f"bad stream {spec!r}: expected NAME=FILE[:fps=N]")
    name, rest = spec.split("=", 1)
    fps = 25
    if ":fps=" in rest:
        rest, fps_text = rest.rsplit(":fps=", 1)
        fps = int(fps_text)
    return name.strip("/"), rest, fps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8554, help="TCP port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--h264", action="append", default=[], metavar="NAME=FILE[:fps=N]")
    parser.add_argument("--h265", action="append", default=[], metavar="NAME=FILE[:fps=N]",
                        help="an H.265 Annex B file (make_media.sh NAME_h265)")
    parser.add_argument("--mjpeg", action="append", default=[], metavar="NAME",
                        help="a path that sends Motion JPEG (an unsupported codec for dumpwatch)")
    parser.add_argument("--user", help="require authentication with this user")
    parser.add_argument("--password", default="")
    parser.add_argument("--auth", choices=["digest", "basic"], default="digest", help="authentication method")
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("--announce", action="store_true",
                        help="print `STARTED NAME UNIX_TIME` when a path starts playing its file from the start")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    server.set_backlog(args.backlog)
    mounts = server.get_mount_points()

    files = {}
    factories = []
    streams = [(spec, "h264") for spec in args.h264] + [(spec, "h265") for spec in args.h265]
    for spec, codec in streams:
        name, path, fps = parse_spec(spec)
        if (path, codec) not in files:
            with open(path, "rb") as f:
                files[(path, codec)] = split_access_units(f.read(), codec)
        factory = LoopingFactory(files[(path, codec)], fps, name, args.announce, codec)
        mounts.add_factory("/" + name, factory)
        factories.append(factory)
    for name in args.mjpeg:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_shared(True)
        factory.set_launch(
            "( videotestsrc is-live=true ! video/x-raw,format=I420,width=320,height=240,framerate=5/1 "
            "! jpegenc ! rtpjpegpay name=pay0 pt=26 )"
        )
        mounts.add_factory("/" + name.strip("/"), factory)
        factories.append(factory)

    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        if args.auth == "basic":
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        else:
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            auth.add_digest(args.user, args.password, token)
        server.set_auth(auth)
        for factory in factories:
            perms = GstRtspServer.RTSPPermissions()
            perms.add_role("viewer")
            perms.add_permission_for_role("viewer", "media.factory.access", True)
            perms.add_permission_for_role("viewer", "media.factory.construct", True)
            factory.set_permissions(perms)

    if server.attach(None) == 0:
        raise SystemExit(f"could not listen on {args.address}:{args.port}")
    print(f"READY port={server.get_bound_port()}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    sys.exit(main())

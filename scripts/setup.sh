#!/usr/bin/env bash
# Installs everything dumpwatch needs on a fresh Debian machine. Idempotent: what is already
# present (with the right hash) is skipped. Called by scripts/demo.sh and scripts/test.sh.
#
#   scripts/setup.sh            # apt packages + ONNX Runtime library + YOLOv12n model
#   scripts/setup.sh --test     # also what the tests use: chromium + chromium-driver (the
#                               # dashboard test), prometheus (promtool checks the alert rules)
#   SKIP_APT=1 scripts/setup.sh # only the model files
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models="$root/models"
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
die() { printf '\033[31msetup: error:\033[0m %s\n' "$*" >&2; exit 1; }

# --- Debian packages -------------------------------------------------------------------------
# libavcodec/libavformat/libavutil/libswscale -dev + clang/libclang-dev + pkg-config: FFmpeg's
# decoders (H.264, H.265) and MP4 (de)muxer, through ffmpeg-next (bindgen needs libclang).
# python3-gi + gir1.2-gst-rtsp-server-1.0 + plugins: the local RTSP test server (scripts/rtsp_server.py).
# ffmpeg (libx264): test media. opencv-doc: real footage (vtest.avi). darknet: real photos.
# fonts-dejavu-core: the font of `eval --plot`. python3-numpy: scripts/make_scenes.py (scenes
# composited from photos). fonts-wqy-microhei: a Chinese font, for the dashboard's zh-CN page in
# the browser tests (and its screenshots in docs/).
APT_PACKAGES=(pkg-config ffmpeg curl unzip ca-certificates
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev clang libclang-dev
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  opencv-doc darknet fonts-dejavu-core python3-numpy fonts-wqy-microhei)
if [ "${1:-}" = "--test" ]; then
  APT_PACKAGES+=(chromium chromium-driver prometheus)
fi

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then say "Debian packages present"; return; fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root or sudo to install: ${missing[*]}"
    sudo="sudo"
  fi
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -q || die "apt-get update failed; check the network / apt sources and run again"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || die "apt-get install failed for: ${missing[*]}"
}

# --- fetched files, checked against models/MANIFEST -------------------------------------------
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

expected_sha() { awk -v p="$1" '$2 == p {print $1}' "$models/MANIFEST"; }

fetch_onnxruntime() {
  local rel="onnxruntime/libonnxruntime.so.1.31.1" sha dest tmp
  sha="$(expected_sha "$rel")"; dest="$models/$rel"
  if sha_ok "$dest" "$sha"; then say "ONNX Runtime library present ($rel)"; return; fi
  say "fetching ONNX Runtime 1.31.1 from the PyPI wheel"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' RETURN
  local py; py="$(command -v python3 || true)"; [ -n "$py" ] || die "python3 with pip is needed to download the onnxruntime wheel"
  "$py" -m pip download -q --no-deps --only-binary=:all: --dest "$tmp" onnxruntime==1.31.1 \
    || die "pip could not download onnxruntime==1.31.1; check access to PyPI and run scripts/setup.sh again"
  local whl; whl="$(ls "$tmp"/onnxruntime-1.31.1-*.whl 2>/dev/null | head -n1)"
  [ -n "$whl" ] || die "no onnxruntime 1.31.1 wheel for this platform was downloaded"
  unzip -q -o -j "$whl" "onnxruntime/capi/libonnxruntime.so.1.31.1" -d "$tmp/lib" \
    || die "the wheel $(basename "$whl") has no onnxruntime/capi/libonnxruntime.so.1.31.1"
  sha_ok "$tmp/lib/libonnxruntime.so.1.31.1" "$sha" \
    || die "libonnxruntime.so.1.31.1 has sha256 $(sha256sum "$tmp/lib/libonnxruntime.so.1.31.1" | cut -d' ' -f1), expected $sha; refusing to use it"
  mkdir -p "$(dirname "$dest")"; mv "$tmp/lib/libonnxruntime.so.1.31.1" "$dest"
  say "installed $rel"
}

fetch_model() {
  local rel="yolov12n.onnx" sha dest tmp
  sha="$(expected_sha "$rel")"; dest="$models/$rel"
  if sha_ok "$dest" "$sha"; then say "model present ($rel)"; return; fi
  say "fetching YOLOv12n (AGPL-3.0 weights) from the crates.io crate easy-yolo 0.1.3"
  command -v cargo >/dev/null || die "cargo is needed to download the easy-yolo crate file"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' RETURN
  # cargo downloads the .crate file into its cache; the crate is never built or linked.
  mkdir -p "$tmp/p/src"; : > "$tmp/p/src/lib.rs"
  printf '[package]\nname = "fetch-model"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\neasy-yolo = "=0.1.3"\n' > "$tmp/p/Cargo.toml"
  (cd "$tmp/p" && cargo fetch -q) || die "cargo could not download easy-yolo 0.1.3; check access to crates.io and run again"
  local crate; crate="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/easy-yolo-0.1.3.crate 2>/dev/null | head -n1)"
  [ -n "$crate" ] || die "easy-yolo-0.1.3.crate not found in the cargo cache after cargo fetch"
  tar -xzf "$crate" -C "$tmp" || die "could not unpack $crate"
  local zip; zip="$(find "$tmp/easy-yolo-0.1.3" -name 'yolov12n.onnx.zip' | head -n1)"
  [ -n "$zip" ] || die "easy-yolo 0.1.3 has no yolov12n.onnx.zip"
  unzip -q -o -j "$zip" -d "$tmp/model" || die "could not unzip $zip"
  local onnx; onnx="$(find "$tmp/model" -name '*.onnx' | head -n1)"
  sha_ok "$onnx" "$sha" || die "yolov12n.onnx has sha256 $(sha256sum "$onnx" | cut -d' ' -f1), expected $sha; refusing to use it"
  mv "$onnx" "$dest"; say "installed $rel"
}

[ "${SKIP_APT:-0}" = 1 ] || install_apt
fetch_onnxruntime
fetch_model
say "done"

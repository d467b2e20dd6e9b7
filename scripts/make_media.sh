#!/usr/bin/env bash
# Makes H.264 and H.265 Annex B test media with ffmpeg/libx264/libx265 (nothing large is committed).
#   scripts/make_media.sh OUT_DIR [NAME...]
# Names: test360 (synthetic, 640x360, 2 s GOP, 25 fps, 10 s), test720 (synthetic 1280x720),
#        still360 (test360's first picture held still, with temporal sensor noise: a camera
#        whose scene does not move),
#        vtest720 / vtest360 (real footage: OpenCV's vtest.avi, pedestrians, main profile, 2 s GOP),
#        street720 (an idle city camera: vtest.avi's first picture held still at 1280x720 with
#        temporal sensor noise, 15 fps, 2 Mb/s, keyframe every 50 frames: keyframes of ≈ 200 KB,
#        set by the noise).
# A name ending in _h265 (vtest720_h265, test360_h265, …) is the same picture encoded with
# libx265 into NAME.h265; the others are H.264 in NAME.h264. test360_10bit_h265 is test360 in
# 10 bits (H.265 Main 10, as some cameras send).
# Every file has its parameter sets before each keyframe (repeat-headers) and access unit
# delimiters, no B-frames. Existing files are kept.
set -euo pipefail
out="${1:?usage: make_media.sh OUT_DIR [NAME...]}"; shift
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(test360)
mkdir -p "$out"
vtest=/usr/share/doc/opencv-doc/examples/data/vtest.avi
x264='keyint=50:min-keyint=50:scenecut=0:bframes=0:repeat-headers=1:aud=1'
x265='keyint=50:min-keyint=50:scenecut=0:bframes=0:repeat-headers=1:aud=1:log-level=error'

make() {
  local name="$1"; shift
  local dest="$out/$name.h264" enc=(-c:v libx264 -preset veryfast -x264-params "$x264") fmt=h264
  if [[ "$name" == *_h265 ]]; then
    dest="$out/$name.h265"; enc=(-c:v libx265 -preset veryfast -x265-params "$x265"); fmt=hevc
  fi
  [ -s "$dest" ] && return 0
  ffmpeg -loglevel error -nostdin -y "$@" -an "${enc[@]}" -pix_fmt "${PIX_FMT:-yuv420p}" -f "$fmt" "$dest.$$.tmp" \
    && mv "$dest.$$.tmp" "$dest"
}

for name in "${names[@]}"; do
  n="${name%_h265}"
  case "$n" in
    test360) make "$name" -f lavfi -i testsrc2=size=640x360:rate=25:duration=10 -profile:v main ;;
    test720) make "$name" -f lavfi -i testsrc2=size=1280x720:rate=25:duration=10 -profile:v main ;;
    test360_10bit) PIX_FMT=yuv420p10le make "$name" -f lavfi -i testsrc2=size=640x360:rate=25:duration=4 ;;
    still360) make "$name" -f lavfi -i testsrc2=size=640x360:rate=25:duration=10 \
        -vf "select=eq(n\,0),loop=249:1,noise=alls=5:allf=t,setpts=N/25/TB" -profile:v main ;;
    street720)
      [ -f "$vtest" ] || { echo "make_media: $vtest missing: run scripts/setup.sh (Debian package opencv-doc)" >&2; exit 1; }
      make "$name" -i "$vtest" -vf "select=eq(n\,0),loop=299:1,scale=1280:720,noise=alls=5:allf=t,setpts=N/15/TB" \
        -r 15 -b:v 2M -profile:v main ;;
    vtest720|vtest360)
      [ -f "$vtest" ] || { echo "make_media: $vtest missing: run scripts/setup.sh (Debian package opencv-doc)" >&2; exit 1; }
      size=1280:720; [ "$n" = vtest360 ] && size=640:360
      make "$name" -i "$vtest" -vf "scale=$size,fps=25" -t 30 -profile:v main ;;
    *) echo "make_media: unknown name $name" >&2; exit 2 ;;
  esac
done

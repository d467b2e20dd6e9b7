#!/usr/bin/env bash
# Makes H.264 Annex B test media with ffmpeg/libx264 (nothing large is committed).
#   scripts/make_media.sh OUT_DIR [NAME...]
# Names: test360 (synthetic, 640x360, 2 s GOP, 25 fps, 10 s), test720 (synthetic 1280x720),
#        still360 (test360's first picture held still, with temporal sensor noise: a camera
#        whose scene does not move),
#        vtest720 / vtest360 (real footage: OpenCV's vtest.avi, pedestrians, main profile, 2 s GOP).
# Every file has SPS/PPS before each keyframe (repeat-headers) and access unit delimiters, no
# B-frames. Existing files are kept.
set -euo pipefail
out="${1:?usage: make_media.sh OUT_DIR [NAME...]}"; shift
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(test360)
mkdir -p "$out"
vtest=/usr/share/doc/opencv-doc/examples/data/vtest.avi
x264='keyint=50:min-keyint=50:scenecut=0:bframes=0:repeat-headers=1:aud=1'

make() {
  local name="$1" dest="$out/$1.h264"; shift
  [ -s "$dest" ] && return 0
  ffmpeg -loglevel error -nostdin -y "$@" -an -c:v libx264 -preset veryfast -x264-params "$x264" \
    -pix_fmt yuv420p -f h264 "$dest.$$.tmp" && mv "$dest.$$.tmp" "$dest"
}

for n in "${names[@]}"; do
  case "$n" in
    test360) make "$n" -f lavfi -i testsrc2=size=640x360:rate=25:duration=10 -profile:v main ;;
    test720) make "$n" -f lavfi -i testsrc2=size=1280x720:rate=25:duration=10 -profile:v main ;;
    still360) make "$n" -f lavfi -i testsrc2=size=640x360:rate=25:duration=10 \
        -vf "select=eq(n\,0),loop=249:1,noise=alls=5:allf=t,setpts=N/25/TB" -profile:v main ;;
    vtest720|vtest360)
      [ -f "$vtest" ] || { echo "make_media: $vtest missing: run scripts/setup.sh (Debian package opencv-doc)" >&2; exit 1; }
      size=1280:720; [ "$n" = vtest360 ] && size=640:360
      make "$n" -i "$vtest" -vf "scale=$size,fps=25" -t 30 -profile:v main ;;
    *) echo "make_media: unknown name $n" >&2; exit 2 ;;
  esac
done

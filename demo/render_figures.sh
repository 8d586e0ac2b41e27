#!/bin/sh
# demo/render_figures.sh DIR...: a PNG next to every .svg under DIR (e.g.
# demo_out/ after `./h2t demo`), to look at the figures without a browser.
# Uses rsvg-convert (Debian: apt-get install librsvg2-bin), else headless
# Chromium (apt-get install chromium), else Inkscape.
set -eu
[ $# -ge 1 ] || { echo "usage: demo/render_figures.sh DIR..." >&2; exit 1; }
chrome=""
for c in chromium chromium-browser google-chrome; do
    command -v "$c" >/dev/null 2>&1 && { chrome=$c; break; }
done
render() {   # render in.svg out.png
    if command -v rsvg-convert >/dev/null 2>&1; then
        rsvg-convert -b white "$1" -o "$2"
    elif [ -n "$chrome" ]; then
        w=$(sed -n 's/.*<svg[^>]* width="\([0-9]*\)" height="\([0-9]*\)".*/\1,\2/p' "$1" | head -n 1)
        "$chrome" --headless --disable-gpu --no-sandbox --hide-scrollbars --window-size="${w:-800,600}" \
            --screenshot="$2" "file://$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" >/dev/null 2>&1
    elif command -v inkscape >/dev/null 2>&1; then
        inkscape "$1" --export-type=png --export-filename="$2" --export-background=white >/dev/null 2>&1
    else
        echo "render_figures: no SVG renderer: apt-get install librsvg2-bin (or chromium, or inkscape)" >&2
        exit 1
    fi
}
n=0
for d in "$@"; do
    [ -d "$d" ] || { echo "render_figures: $d: not a directory" >&2; exit 1; }
    for f in $(find "$d" -name '*.svg' | sort); do
        render "$f" "${f%.svg}.png"
        echo "render_figures: ${f%.svg}.png"
        n=$((n + 1))
    done
done
[ "$n" -gt 0 ] || { echo "render_figures: no .svg files under $*" >&2; exit 1; }

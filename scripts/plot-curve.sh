#!/bin/sh
# plot-curve.sh — turn a learning curve into a plot with gnuplot (gnuplot-nox,
# installed by scripts/install-deps.sh).
#   scripts/plot-curve.sh CURVE.tsv OUT.svg|OUT.png [TITLE]
# CURVE.tsv: a header line, then one line per epoch: "epoch<TAB>train<TAB>valid"
# (valid may be "nan" or empty when there is no validation data).
# Without gnuplot it says so and exits 1. (C callers can skip gnuplot entirely:
# cb_evalrun_curve_svg() in src/eval/evalrun.h writes the same plot as SVG.)
set -eu
[ $# -ge 2 ] || { echo "usage: $0 CURVE.tsv OUT.svg|OUT.png [TITLE]" >&2; exit 2; }
in=$1; out=$2; title=${3:-learning curve}
[ -r "$in" ] || { echo "$0: cannot read $in" >&2; exit 1; }
command -v gnuplot >/dev/null 2>&1 || { echo "$0: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
case $out in
  *.png) term="pngcairo size 800,480" ;;
  *.svg) term="svg size 800,480 dynamic background rgb 'white'" ;;
  *) echo "$0: output must end in .svg or .png" >&2; exit 2 ;;
esac
# pngcairo may be missing in gnuplot-nox: fall back to the plain png terminal
if [ "${out%.png}" != "$out" ] && ! gnuplot -e "set terminal pngcairo" >/dev/null 2>&1; then term="png size 800,480"; fi
gnuplot <<GP
set terminal $term
set output '$out'
set datafile separator '\t'
set datafile missing 'nan'
set title '$title'
set xlabel 'epoch'
set ylabel 'loss'
set key top right
set grid
plot '$in' using 1:2 skip 1 with linespoints lw 2 title 'train', \
     '' using 1:3 skip 1 with linespoints lw 2 title 'validation'
GP
echo "wrote $out"

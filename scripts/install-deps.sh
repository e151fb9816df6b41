#!/bin/sh
# Installs everything cbrec needs to build, test and benchmark on Debian 12.
# Usage: scripts/install-deps.sh [--minimal]
#   --minimal  only what `make` and `make test` need without the PyTorch parity
#              test (skips python3-torch, the largest package).
set -eu
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PKGS="build-essential pkg-config libopenblas-dev libcmocka-dev libjansson-dev
      gnuplot-nox clang time libclang-rt-14-dev"
PKGS="$PKGS libmicrohttpd-dev libsqlite3-dev wrk"  # cbrec serve, its tests and bench
# the web page's test (tests/web): Debian's headless chromium driven by node over CDP pipes (no npm)
PKGS="$PKGS chromium nodejs fonts-dejavu-core"
# the Python binding (make python, its pytest suite, pip install ./python in a venv)
PKGS="$PKGS python3-dev python3-numpy python3-pytest python3-setuptools python3-pip python3-wheel python3-pandas python3-venv"
PKGS="$PKGS valgrind"  # make test VALGRIND=1
PKGS="$PKGS libopenmpi-dev openmpi-bin"  # mpirun -np K cbrec train (the Makefile builds MPI in when mpicc is there)
if [ "${1:-}" != "--minimal" ]; then
  PKGS="$PKGS python3 python3-numpy python3-torch"
  PKGS="$PKGS python3-hnswlib" # bench only: bench_ann's peer (bench/bench_ann_hnswlib.py)
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS

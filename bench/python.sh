#!/bin/sh
# The Python binding's benchmark (python/bench/bench_binding.py): recommend
# from Python vs the same C calls, and recommend_batch vs a Python loop.
# Skips, saying why, when `make python` could not build the module.
PYTHON=${PYTHON:-python3}
if [ -z "${PYTHONPATH:-}" ] || ! ls "$PYTHONPATH"/cbrec/_cbrec*.so >/dev/null 2>&1; then
  echo "skipped: the Python binding is not built (make python: needs python3-dev and python3-numpy)"
  exit 0
fi
exec "$PYTHON" python/bench/bench_binding.py

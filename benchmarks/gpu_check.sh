#!/usr/bin/env bash
# The prepared GPU check of issue #11 (~8 min on one H100/H200). Run from anywhere:
#   bash benchmarks/gpu_check.sh                 # results in results/gpu_check/
#   bash benchmarks/gpu_check.sh --cpu-smoke     # CPU dry run (measures nothing)
# Extra arguments go to benchmarks/gpu_check.py (--out DIR, --budget SECONDS, --only STEPS).
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
exec "$PYTHON" benchmarks/gpu_check.py "$@"

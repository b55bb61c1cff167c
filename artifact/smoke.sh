#!/usr/bin/env bash
# The README's main-job command: set up ./.venv (idempotent), then run the smoke reproduction on
# the embedded default (theory experiments; image experiments on scikit-learn's bundled digits
# when solo-learn is installed) and check every claim. Extra arguments go to `repro all`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
.venv/bin/solo-offdiag repro all --preset smoke "$@"

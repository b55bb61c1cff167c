#!/usr/bin/env bash
# The README's main-job command: set up ./.venv (idempotent), make sure solo-learn 1.0.6 is
# available for the image experiments, then run the smoke reproduction on the embedded default
# (theory experiments + image experiments on scikit-learn's bundled digits) and check every claim.
# Extra arguments go to `repro all`. Exit status: that of `repro all` (0 only when no claim FAILs).
#
# solo-learn pins lightning 2.1.2, so it is never installed into ./.venv (the environment that
# `bash .ci/run` tests): when ./.venv lacks it, it goes into a separate ./.venv-solo (override:
# SOLO_VENV=DIR) that sees ./.venv's packages through a .pth file and adds solo-learn and its pins:
#   1. from a local solo-learn checkout named by SOLO_LEARN_SRC (offline machines), else
#   2. from the pinned commit of artifact/env/solo-learn.pin (git, SOLO_INSTALL_TIMEOUT seconds,
#      default 900).
# Only when both fail are the image claims SKIPPED, with the reason and the exact command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup

SOLO_VENV=${SOLO_VENV:-.venv-solo}
SOLO_INSTALL_TIMEOUT=${SOLO_INSTALL_TIMEOUT:-900}
PIN_REPO=$(sed -n 's/^repository: //p' artifact/env/solo-learn.pin)
PIN_COMMIT=$(sed -n 's/^commit: //p' artifact/env/solo-learn.pin)
PIN_URL="git+${PIN_REPO}@${PIN_COMMIT}"

solo_ok() {  # solo-learn 1.0.6 importable by this python (as the image experiments check it)
    "$1" -c 'import sys
from solo_offdiag.solo_adapter.requirements import solo_available
ok, why = solo_available()
sys.exit(0 if ok else 1)' >/dev/null 2>&1
}

solo_why() {  # why solo_ok fails (one line)
    "$1" -c 'from solo_offdiag.solo_adapter.requirements import solo_available
print(solo_available()[1])' 2>&1 | tail -n 1
}

make_solo_venv() {
    [ -x "$SOLO_VENV/bin/python" ] || python3 -m venv "$SOLO_VENV"
    local base site
    base=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    site=$("$SOLO_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # torch etc. from ./.venv, no second download; addsitedir (not a bare path line) so that .pth
    # files there are honoured too (e.g. a .venv that itself extends another environment)
    echo "import site; site.addsitedir('$base')" > "$site/_solo_offdiag_base.pth"
    "$SOLO_VENV/bin/python" -m pip install -q --disable-pip-version-check 'setuptools<81' wheel
    "$SOLO_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e .
}

install_solo() {  # $1: what pip installs (a checkout or the pinned git URL)
    # setuptools in [77.0.3, 81): torch asks for >= 77.0.3, and lightning 2.1.2 (solo's pin) imports
    # pkg_resources, which setuptools 81+ no longer has (without the cap pip upgrades to the newest
    # and `import solo` fails)
    "$SOLO_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation "$1" \
        'setuptools>=77.0.3,<81'
}

PY=.venv/bin/python
SKIP_REASON=""
if solo_ok .venv/bin/python; then
    echo "[smoke] solo-learn found in .venv"
elif [ -x "$SOLO_VENV/bin/python" ] && solo_ok "$SOLO_VENV/bin/python"; then
    PY="$SOLO_VENV/bin/python"
    echo "[smoke] solo-learn found in $SOLO_VENV"
else
    echo "[smoke] solo-learn 1.0.6 missing: installing it into $SOLO_VENV (not .venv: it pins lightning 2.1.2)"
    log=$(mktemp)
    if ! make_solo_venv >"$log" 2>&1; then
        SKIP_REASON="could not create $SOLO_VENV: $(tail -n 3 "$log" | tr '\n' ' ')"
    elif [ -n "${SOLO_LEARN_SRC:-}" ] && install_solo "$SOLO_LEARN_SRC" >>"$log" 2>&1 && solo_ok "$SOLO_VENV/bin/python"; then
        echo "[smoke] installed solo-learn from SOLO_LEARN_SRC=$SOLO_LEARN_SRC"
    elif (export -f install_solo; export SOLO_VENV; timeout "$SOLO_INSTALL_TIMEOUT" bash -c 'install_solo "$0"' "$PIN_URL") \
            >>"$log" 2>&1 && solo_ok "$SOLO_VENV/bin/python"; then
        echo "[smoke] installed solo-learn from $PIN_URL"
    else
        SKIP_REASON="installing solo-learn failed (SOLO_LEARN_SRC=${SOLO_LEARN_SRC:-unset}; $PIN_URL within ${SOLO_INSTALL_TIMEOUT} s): $(tail -n 3 "$log" | tr '\n' ' ') [import check: $(solo_why "$SOLO_VENV/bin/python")]"
    fi
    rm -f "$log"
    if [ -z "$SKIP_REASON" ]; then
        PY="$SOLO_VENV/bin/python"
    else
        echo "[smoke] image claims will be SKIPPED: $SKIP_REASON" >&2
        echo "[smoke] to enable them: SOLO_LEARN_SRC=<solo-learn checkout at $PIN_COMMIT> bash artifact/smoke.sh" >&2
        echo "[smoke]   or: $SOLO_VENV/bin/python -m pip install --no-build-isolation '$PIN_URL'" >&2
    fi
fi
echo "[smoke] running the smoke preset with $PY"
# two runs at once: one per core of the 2-core CPU the smoke budget is set for (--jobs N overrides)
exec "$(dirname "$PY")/solo-offdiag" repro all --preset smoke --jobs 2 "$@"

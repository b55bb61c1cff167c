"""Run a solo-learn script (``main_knn.py``, ``main_umap.py``, ``main_pretrain.py``...) with our
methods registered: the only way into solo's argparse scripts, which read ``METHODS`` directly.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["run_script"]


def run_script(script: str | os.PathLike[str], args: Sequence[str] = ()) -> int:
    """Register our methods, then run ``script`` as ``__main__`` with ``sys.argv = [script, *args]``.

    The script's directory goes first on ``sys.path`` (as ``python script.py`` would do), so a
    solo-learn checkout's relative imports and ``--config-path`` resolve as usual.

    Returns:
        the script's exit code (0 if it returned normally).

    Raises:
        FileNotFoundError: ``script`` does not exist.
        SoloLearnNotInstalled: solo-learn 1.0.6 is missing (with install instructions).
    """
    path = Path(script)
    if not path.is_file():
        raise FileNotFoundError(f"solo-learn script not found: {str(path)!r}")
    from solo_offdiag.solo_adapter.registration import register

    register()
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.resolve().parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    return 0

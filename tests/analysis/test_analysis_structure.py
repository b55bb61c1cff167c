"""How the analysis package is put together: one module per callback, every callback registered,
the shared step-keyed state, no import cycle with ``solo_offdiag.config``."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pytest
import torch

import solo_offdiag.analysis.callbacks as package
from solo_offdiag.analysis.callbacks import (
    REGISTRY,
    AnalysisCallback,
    EmbeddingSpectrumCallback,
    StepSeries,
    build_callbacks,
)
from solo_offdiag.analysis.config import AnalysisConfig

ROOT = Path(__file__).resolve().parents[2] / "solo_offdiag"
HELPERS = {"base", "state", "registry"}


def _callback_modules() -> dict[str, list[type]]:
    out = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in HELPERS:
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        out[info.name] = [
            cls
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, AnalysisCallback) and cls.__module__ == module.__name__
        ]
    return out


def test_one_callback_per_module_and_every_one_registered():
    modules = _callback_modules()
    assert set(modules) == {"head_dynamics", "spectrum", "collapse", "alignment"}
    assert all(len(classes) == 1 for classes in modules.values()), modules
    everything = AnalysisConfig()  # every switch on
    built = {type(c) for c in build_callbacks(everything, head_is_linear=True)}
    assert built == {classes[0] for classes in modules.values()}
    assert len(REGISTRY) == len(modules)


def test_the_public_import_path_is_unchanged():
    from solo_offdiag.analysis.callbacks import (  # noqa: F401
        AnalysisProtocolError,
        AnalysisWarning,
        AnalysisWorkerError,
        CollapseMonitorCallback,
        EigenAlignmentCallback,
        HeadDynamicsCallback,
        resolve_out_dir,
    )


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_import_cycle_between_config_and_analysis():
    for path in (ROOT / "analysis").rglob("*.py"):
        bad = {m for m in _imports(path) if m == "solo_offdiag.config" or m.startswith("solo_offdiag.config.")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
    init = (ROOT / "config" / "__init__.py").read_text(encoding="utf-8")
    assert "__getattr__" not in init  # no lazy import hiding a cycle


# -- the shared step-keyed state ------------------------------------------------------------------
def test_step_series_records_truncates_exports_and_round_trips():
    series = StepSeries(("a", "b"))
    for step in (5, 10, 15):
        series.record(step, a=np.full(3, step, dtype=np.float32), b=np.arange(step % 4))
    series.truncate(10)
    assert series.steps == [5, 10] and series.steps_array().dtype == np.int64
    assert series.table("a").tolist() == [[5, 5, 5], [10, 10, 10]]
    ragged = series.table("b")  # lengths 1 and 2: NaN-padded
    assert ragged.shape == (2, 2) and np.isnan(ragged[0, 1]) and ragged[1].tolist() == [0, 1]
    copy = StepSeries(("a", "b"))
    copy.load_state_dict(series.state_dict())
    assert copy.steps == series.steps and np.array_equal(copy.table("a"), series.table("a"))
    with pytest.raises(ValueError, match="exactly the fields"):
        series.record(20, a=np.zeros(3))
    with pytest.raises(ValueError, match="inconsistent analysis state"):
        copy.load_state_dict({"steps": [1, 2], "a": [np.zeros(1)], "b": []})


def test_spectrum_state_of_older_checkpoints_still_loads():
    callback = EmbeddingSpectrumCallback(embeddings=("z", "feats"))
    legacy = {  # the layout before the StepSeries helper
        "rows": {5: {"rankme/z": 2.0}},
        "last_step": 5,
        "extra": {"steps": [5], "spectra": {"z": [torch.ones(4)], "feats": [torch.ones(6)]}},
    }
    callback.load_state_dict(legacy)
    assert callback.spectra.steps == [5]
    assert callback.spectra.table("feats").shape == (1, 6)
    state = callback.state_dict()
    assert state["extra"]["steps"] == [5] and len(state["extra"]["z"]) == 1

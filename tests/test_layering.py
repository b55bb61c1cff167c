"""The architecture's one-way dependencies, checked statically on every module's imports.

torch-only math (heads, metrics, theory, config) < Lightning callbacks / data < the solo-learn
adapter (the only code importing ``solo``) < CLI and reproduction package. Nothing imports upward.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "solo_offdiag"

# Higher number = higher layer. A module may import only from its own layer or below.
LAYERS: dict[str, int] = {
    "solo_offdiag.io": 0,
    "solo_offdiag.suggest": 0,
    "solo_offdiag.claim_registry": 0,
    "solo_offdiag.config.validate": 0,
    "solo_offdiag.heads": 0,
    "solo_offdiag.analysis.config": 0,
    "solo_offdiag.analysis.metrics": 0,
    "solo_offdiag.theory": 0,
    "solo_offdiag.config": 1,
    "solo_offdiag.analysis": 2,
    "solo_offdiag.data": 2,
    "solo_offdiag.perf": 2,
    "solo_offdiag.solo_adapter": 3,
    "solo_offdiag.cli": 4,
    "solo_offdiag.repro": 4,
}
# Third-party packages forbidden per layer (layer 0 is "torch only").
FORBIDDEN = {0: {"solo", "lightning", "pytorch_lightning", "hydra", "omegaconf"}, 1: {"solo"}, 2: {"solo"}}


def _layer(module: str) -> int | None:
    best = None
    for prefix, layer in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best[0])
        ):
            best = (prefix, layer)
    return None if best is None else best[1]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_no_upward_or_forbidden_imports(module: str, path: Path) -> None:
    layer = _layer(module)
    if layer is None:
        return  # top-level glue (__init__, __main__) is allowed to import anything below
    for imported in _imports(path):
        top = imported.split(".")[0]
        assert top not in FORBIDDEN.get(layer, set()), f"{module} (layer {layer}) imports {imported}"
        target = _layer(imported)
        if imported.startswith("solo_offdiag") and target is not None:
            assert target <= layer, f"{module} (layer {layer}) imports {imported} (layer {target})"


def test_import_solo_offdiag_needs_no_solo_and_no_lightning() -> None:
    code = (
        "import sys, solo_offdiag, solo_offdiag.heads, solo_offdiag.config;"
        "bad = [m for m in ('solo', 'lightning') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


#: The theory package computes only: no plotting library and no file writers (figures, NPZ, CSV
#: and summary.json are written by solo_offdiag.repro.theory_output, a layer above).
THEORY_FORBIDDEN = ("matplotlib", "csv", "solo_offdiag.io", "solo_offdiag.repro", "solo_offdiag.cli")


@pytest.mark.parametrize("path", sorted((PACKAGE / "theory").rglob("*.py")), ids=lambda p: p.name)
def test_theory_package_imports_no_plotting_and_no_writers(path: Path) -> None:
    for imported in _imports(path):
        assert not any(imported == bad or imported.startswith(bad + ".") for bad in THEORY_FORBIDDEN), (
            f"{path.relative_to(ROOT)} imports {imported}: the theory package computes only")


def test_claim_registry_is_standard_library_only() -> None:
    """The criteria registry sits at the bottom so that the torch-only theory package registers its
    criteria without importing the reproduction package (which registers the image criteria)."""
    stdlib = {"__future__", "collections", "dataclasses", "enum", "typing"}
    for imported in _imports(PACKAGE / "claim_registry.py"):
        assert imported == "solo_offdiag.suggest" or imported.split(".")[0] in stdlib, imported

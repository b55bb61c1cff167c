"""pyproject's explicit package list covers every package (configs/ ships as solo_offdiag_configs,
artifact/ as solo_offdiag_artifact)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib needs Python 3.11")
def test_every_package_is_listed_in_pyproject():
    import tomllib
    from setuptools import find_namespace_packages

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set(find_namespace_packages(where=str(ROOT), include=["solo_offdiag*", "hydra_plugins*"]))
    missing = sorted(found - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
    assert "solo_offdiag_configs" in listed
    assert "solo_offdiag_artifact" in listed  # artifact/ (claims.yaml, configs/), see test_wheel.py
    assert not (ROOT / "hydra_plugins" / "__init__.py").exists(), "hydra_plugins must stay a namespace package"

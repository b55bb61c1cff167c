"""Without solo-learn (simulated): every entry point says so once, with the install recipe."""

from __future__ import annotations

import subprocess
import sys

import pytest

from solo_offdiag.solo_adapter import requirements
from solo_offdiag.solo_adapter.requirements import SOLO_COMMIT, SoloLearnNotInstalled, require_solo


@pytest.fixture
def no_solo(monkeypatch):
    """Make ``import solo`` fail as if solo-learn were not installed."""
    for name in [m for m in sys.modules if m == "solo" or m.startswith("solo.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "solo", None)
    monkeypatch.setattr(requirements, "_checked", None)
    monkeypatch.setattr(requirements, "_installed_version", lambda: None)


def _assert_instructions(text: str) -> None:
    assert SOLO_COMMIT in text
    assert "pip install 'setuptools<81'" in text
    assert "pip install --no-build-isolation" in text
    assert "1.0.2" in text  # says why PyPI's version does not do


def test_missing_solo_raises_with_install_instructions(no_solo):
    with pytest.raises(SoloLearnNotInstalled, match="solo-learn is not installed") as info:
        require_solo()
    assert isinstance(info.value, ImportError)
    _assert_instructions(str(info.value))


def test_old_solo_is_refused_by_version(monkeypatch):
    monkeypatch.setattr(requirements, "_checked", None)
    monkeypatch.setattr(requirements, "_installed_version", lambda: "1.0.2")
    with pytest.raises(SoloLearnNotInstalled, match="solo-learn 1.0.2 is installed, but it is too old") as info:
        require_solo()
    _assert_instructions(str(info.value))


def test_solo_without_hydra_api_is_refused(monkeypatch):
    """An importable ``solo`` lacking solo.args.pretrain (the 1.0.2 layout)."""
    import types

    for name in [m for m in sys.modules if m == "solo" or m.startswith("solo.")]:
        monkeypatch.delitem(sys.modules, name)
    fake = types.ModuleType("solo")
    fake.__path__ = []  # a package with no submodules
    monkeypatch.setitem(sys.modules, "solo", fake)
    monkeypatch.setattr(requirements, "_checked", None)
    monkeypatch.setattr(requirements, "_installed_version", lambda: None)
    with pytest.raises(SoloLearnNotInstalled, match="not the 1.0.6 line"):
        require_solo()


def test_register_and_launcher_and_pretrain_say_so(no_solo, tmp_path, capsys):
    from solo_offdiag.cli.main import main
    from solo_offdiag.solo_adapter import register

    with pytest.raises(SoloLearnNotInstalled):
        register()
    script = tmp_path / "main_knn.py"
    script.write_text("raise SystemExit(0)\n")
    assert main(["run", str(script)]) == 2
    err = capsys.readouterr().err
    assert err.count("solo-learn is not installed") == 1
    _assert_instructions(err)
    assert main(["pretrain", "hardware=cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("solo-offdiag pretrain: solo-learn is not installed")
    _assert_instructions(err)


def test_imports_need_no_solo():
    code = (
        "import sys; sys.modules['solo'] = None\n"
        "import solo_offdiag, solo_offdiag.solo_adapter, solo_offdiag.solo_adapter.methods\n"
        "import solo_offdiag.solo_adapter.pretraining, solo_offdiag.solo_adapter.launcher\n"
        "import solo_offdiag.cli.main, hydra_plugins.solo_offdiag_plugin\n"
        "from solo_offdiag.cli.main import main; assert main(['heads']) == 0\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

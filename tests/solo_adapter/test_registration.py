"""register(), the Hydra plugin's registration, and `solo-offdiag run` (need solo-learn)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.solo


def test_register_is_idempotent(registered_methods):
    from solo.methods import METHODS

    from solo_offdiag.solo_adapter import register

    before = dict(METHODS)
    assert register() == registered_methods
    assert before == METHODS


def test_register_refuses_a_different_class_under_our_name(registered_methods, monkeypatch):
    from solo.methods import METHODS

    from solo_offdiag.solo_adapter import RegistrationError, register

    monkeypatch.setitem(METHODS, "simsiam_offdiag", type("Impostor", (), {}))
    with pytest.raises(RegistrationError, match=r"METHODS\['simsiam_offdiag'\] is already .*Impostor"):
        register()
    assert METHODS["byol_offdiag"] is registered_methods["byol_offdiag"]


def test_hydra_plugin_registers_when_solo_is_loaded():
    code = textwrap.dedent(
        """
        import solo.methods
        from solo.methods import METHODS
        assert 'byol_offdiag' not in METHODS
        from hydra.core.plugins import Plugins
        Plugins.instance()  # Hydra's start-up scan imports hydra_plugins.*
        assert {'byol_offdiag', 'simsiam_offdiag'} <= set(METHODS), sorted(METHODS)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_run_launches_script_with_methods_registered(tmp_path):
    from solo_offdiag.cli.main import main

    script = tmp_path / "probe.py"
    out = tmp_path / "out.txt"
    script.write_text(
        "import sys\nfrom solo.methods import METHODS\n"
        f"open({str(out)!r}, 'w').write(' '.join([str('byol_offdiag' in METHODS), *sys.argv[1:]]))\n"
        "sys.exit(3)\n"
    )
    assert main(["run", str(script), "--foo", "bar"]) == 3
    assert out.read_text() == "True --foo bar"


def test_run_missing_script_is_a_clear_error(tmp_path, capsys):
    from solo_offdiag.cli.main import main

    assert main(["run", str(tmp_path / "nope.py")]) == 2
    assert "script not found" in capsys.readouterr().err

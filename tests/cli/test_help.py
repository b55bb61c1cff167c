"""Every subcommand of `solo-offdiag` has --help (in-process and as a console script)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from solo_offdiag.cli.main import SUBCOMMANDS, build_parser, main


def _available() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_top_level_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in ("heads", "pretrain", "run"):
        assert name in out


@pytest.mark.parametrize("command", _available())
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"solo-offdiag {command}" in capsys.readouterr().out


def test_every_listed_subcommand_is_shipped_and_attached():
    """Each module of SUBCOMMANDS exists and adds the subcommand named after it: deleting a module
    (which build_parser() skips silently) or registering another name fails here."""
    expected = sorted(module.rsplit(".", 1)[1] for module in SUBCOMMANDS)
    assert _available() == expected
    assert {"heads", "pretrain", "run", "plot", "theory", "repro"} <= set(expected)


def test_help_does_not_import_solo_or_lightning():
    code = (
        "import sys\nfrom solo_offdiag.cli.main import main\n"
        "for c in ('pretrain', 'run', 'heads'):\n"
        "    try: main([c, '--help'])\n"
        "    except SystemExit: pass\n"
        "bad = [m for m in ('solo', 'lightning') if m in sys.modules]\nassert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_heads_lists_every_kind(capsys):
    from solo_offdiag.heads import list_heads

    assert main(["heads"]) == 0
    out = capsys.readouterr().out
    for kind in list_heads():
        assert kind in out
    assert main(["heads", "--json"]) == 0
    assert '"offdiag"' in capsys.readouterr().out


def test_run_needs_a_script(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run"])
    assert exit_.value.code == 2

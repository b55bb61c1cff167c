"""``--artifact DIR``: every ``repro`` subcommand takes the artifact's data from DIR, validated first."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from solo_offdiag.cli.main import build_parser, main
from solo_offdiag.repro import artifact as A
from solo_offdiag.repro import experiments as E


def _repro_subcommands() -> list[str]:
    repro = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["repro"]
    sub = next(a for a in repro._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


#: every subcommand that reads the artifact's files; `snapshot` only copies finished results
SUBCOMMANDS = [s for s in _repro_subcommands() if s != "snapshot"]
#: the arguments each subcommand needs besides --artifact and --results
ARGS = {"run": ["c_no_bn"]}


@pytest.fixture
def artifact(tmp_path) -> Path:
    """A copy of the packaged artifact's data files."""
    folder = tmp_path / "my-artifact"
    for name in A.ARTIFACT_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(A.packaged_artifact_dir() / name, folder / name)
    return folder


def _cmd(name: str, tmp_path: Path, folder: Path) -> list[str]:
    results = [] if name == "list" else ["--results", str(tmp_path / "results")]
    return ["repro", name, *ARGS.get(name, []), *results, "--artifact", str(folder)]


def test_every_repro_subcommand_takes_the_option():
    assert set(SUBCOMMANDS) == {"list", "run", "figures", "tables", "check", "all"}
    assert set(_repro_subcommands()) - set(SUBCOMMANDS) == {"snapshot"}
    with pytest.raises(SystemExit):  # it has no --artifact (it would have nothing to read there)
        build_parser().parse_args(["repro", "snapshot", "--out", "x", "--artifact", "y"])


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_uses_the_folder_while_it_works(name, tmp_path, artifact, monkeypatch, capsys):
    """Each subcommand's work runs with DIR's files in use, and the packaged copy is back afterwards."""
    seen = []

    def record(*args, **kwargs):
        seen.append((A.artifact_dir(), E.image_config()))
        return SimpleNamespace(report=SimpleNamespace(lines=lambda: []), wall_time_s=0.0, exit_code=0)

    from solo_offdiag.repro import check, figures, pipeline

    monkeypatch.setattr(E, "describe", lambda: record() and {})
    monkeypatch.setattr(pipeline, "run_experiments", lambda *a, **k: record() and [])
    monkeypatch.setattr(pipeline, "run_all", record)
    monkeypatch.setattr(figures, "write_figures", lambda *a, **k: record() and [])
    real_evaluate = check.evaluate
    monkeypatch.setattr(check, "evaluate", lambda *a, **k: (record(), real_evaluate(*a, **k))[1])
    assert main(_cmd(name, tmp_path, artifact)) == 0, capsys.readouterr()
    assert seen and all(s == (artifact.resolve(), artifact.resolve() / "configs" / "image_heads.yaml") for s in seen)
    assert A.artifact_dir() == A.packaged_artifact_dir()


def test_check_and_tables_judge_the_claims_of_the_folder(tmp_path, artifact, fakes, capsys):
    data = yaml.safe_load((artifact / "claims.yaml").read_text())
    data["claims"] = [c for c in data["claims"] if c["id"] in ("C5", "C6")]
    (artifact / "claims.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    fakes.write_theory_results(tmp_path / "results" / "smoke", good=True)
    assert main(_cmd("check", tmp_path, artifact)) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines() if line[:1] == "C"] == ["C5", "C6"]
    assert out.splitlines()[-1] == "preset smoke: 2 PASS, 0 FAIL, 0 SKIPPED"
    assert main(_cmd("tables", tmp_path, artifact)) == 0
    rows = (tmp_path / "results" / "smoke" / "tables" / "claims.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["C5", "C6"]
    # without the option: the packaged claims again
    assert main(["repro", "check", "--results", str(tmp_path / "results")]) == 0
    assert "C4  PASS" in capsys.readouterr().out


def test_run_takes_the_image_grid_of_the_folder(artifact, monkeypatch):
    grid = yaml.safe_load((artifact / "configs" / "image_heads.yaml").read_text())
    grid["smoke"]["first_seed"] = 4242
    (artifact / "configs" / "image_heads.yaml").write_text(yaml.safe_dump(grid, sort_keys=False))
    A.use_artifact(artifact)
    try:
        specs = E.image_specs("smoke", "cpu", 1, Path("data"), None)
    finally:
        A.use_artifact(None)
    assert specs and all(s.key.endswith("/seed4242") for s in specs)
    assert all(not s.key.endswith("/seed4242") for s in E.image_specs("smoke", "cpu", 1, Path("data"), None))


def _break(folder: Path, what: str) -> None:
    if what == "no claims file":
        (folder / "claims.yaml").unlink()
    elif what == "no image config":
        shutil.rmtree(folder / "configs")
    elif what == "malformed claims":
        data = yaml.safe_load((folder / "claims.yaml").read_text())
        data["claims"][0]["checks"][0]["criterion"] = "c1_competitiv"
        (folder / "claims.yaml").write_text(yaml.safe_dump(data))
    elif what == "not yaml":
        (folder / "claims.yaml").write_text("claims: [unclosed\n")
    elif what == "image config without the preset":
        grid = yaml.safe_load((folder / "configs" / "image_heads.yaml").read_text())
        del grid["medium"]
        (folder / "configs" / "image_heads.yaml").write_text(yaml.safe_dump(grid))


@pytest.mark.parametrize("what, message", [
    ("no folder", "not a folder; an artifact folder holds claims.yaml, configs/image_heads.yaml"),
    ("no claims file", "missing claims.yaml; an artifact folder holds"),
    ("no image config", "missing configs/image_heads.yaml"),
    ("malformed claims", "claims.yaml: claim C1.checks[0].criterion: unknown image criterion 'c1_competitiv' "
                         "(did you mean 'c1_competitive'?)"),
    ("not yaml", "claims.yaml: while parsing"),
    ("image config without the preset", "image_heads.yaml: no section 'medium' (found: "),
])
@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_a_bad_folder_exits_2_naming_it_and_the_problem(name, what, message, tmp_path, artifact, capsys):
    folder = tmp_path / "nowhere" if what == "no folder" else artifact
    if what != "no folder":
        _break(folder, what)
    assert main(_cmd(name, tmp_path, folder)) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"solo-offdiag repro: --artifact {str(folder)!r}: ") and message in out, out
    assert "Traceback" not in out
    assert not (tmp_path / "results").exists()  # nothing was run or written
    assert A.artifact_dir() == A.packaged_artifact_dir()


def test_the_option_is_documented_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["repro", "--help"])
    assert "--artifact DIR" in capsys.readouterr().out
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit):
            main(["repro", name, "--help"])
        assert "--artifact DIR" in capsys.readouterr().out

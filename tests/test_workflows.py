"""The GitHub workflows validate against the GitHub-workflow JSON schema and do what they claim.

Schema: check-jsonschema's vendored copy (``--builtin-schema vendor.github-workflows``), run from
the environment of the test interpreter (offline). Structure: CI runs the README's test command
and tox lint; the GPU workflow installs the hash-pinned CUDA lock and solo-learn at the pinned
commit, runs the smoke reproduction on CUDA, checks, and uploads results/.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from solo_offdiag.solo_adapter.requirements import SOLO_PIN

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _check_jsonschema() -> str:
    beside = Path(sys.executable).parent / "check-jsonschema"
    if beside.is_file():
        return str(beside)
    found = shutil.which("check-jsonschema")
    if found is None:
        pytest.skip("check-jsonschema is not installed (pip install 'solo-offdiag[dev]')")
    return found


def _load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def _steps(workflow: dict, job: str) -> list[dict]:
    return workflow["jobs"][job]["steps"]


def _runs(workflow: dict, job: str) -> str:
    return "\n".join(s.get("run", "") for s in _steps(workflow, job))


@pytest.mark.parametrize("name", ["ci.yml", "gpu.yml"])
def test_workflow_matches_github_schema(name):
    out = subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(WORKFLOWS / name)],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_schema_check_can_fail(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: push\njobs:\n  x:\n    steps: 3\n")
    out = subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.github-workflows", str(bad)],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode != 0


def test_ci_runs_the_readme_test_command_and_lint():
    ci = _load("ci.yml")
    assert "bash .ci/run" in _runs(ci, "test")
    assert "tox -e lint" in _runs(ci, "lint")
    assert (ROOT / ".ci" / "run").is_file()
    # the lint env exists in tox.ini
    assert "[testenv:lint]" in (ROOT / "tox.ini").read_text()


def test_gpu_workflow_installs_pins_runs_checks_uploads():
    gpu = _load("gpu.yml")
    job = gpu["jobs"]["reproduce"]
    assert job["runs-on"] == ["self-hosted", "gpu"]
    runs = _runs(gpu, "reproduce")
    assert "--require-hashes -r artifact/env/requirements-cuda.txt" in runs
    assert (ROOT / "artifact" / "env" / "requirements-cuda.txt").is_file()
    # solo-learn from GitHub at the pinned commit, the same commit as the pin file
    assert gpu["env"]["SOLO_LEARN_COMMIT"] == SOLO_PIN
    assert "git+https://github.com/vturrisi/solo-learn@${SOLO_LEARN_COMMIT}" in runs
    pin = (ROOT / "artifact" / "env" / "solo-learn.pin").read_text()
    assert SOLO_PIN in pin
    # the reproduction on CUDA, then the check, in that order
    all_idx = next(i for i, s in enumerate(_steps(gpu, "reproduce")) if "repro all" in s.get("run", ""))
    check_idx = next(i for i, s in enumerate(_steps(gpu, "reproduce")) if "repro check" in s.get("run", ""))
    assert all_idx < check_idx
    all_cmd = _steps(gpu, "reproduce")[all_idx]["run"]
    assert "--device cuda" in all_cmd and "${PRESET}" in all_cmd
    assert "smoke" in gpu["env"]["PRESET"]
    upload = [s for s in _steps(gpu, "reproduce") if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert upload and upload[0].get("if") == "always()" and "results/" in upload[0]["with"]["path"]


def test_locks_pin_the_agreed_versions():
    for name in ("requirements-cpu.txt", "requirements-cuda.txt"):
        text = (ROOT / "artifact" / "env" / name).read_text()
        pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^ \\\n]+)", text, flags=re.M))
        assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1", name
        assert pins["lightning"] == "2.1.2", name
        assert int(pins["setuptools"].split(".")[0]) < 81, name
        assert "hydra-core" in pins and "--hash=sha256:" in text
        # every pinned requirement carries hashes (pip install --require-hashes works)
        blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text.split("\n\n", 1)[1])
        assert all("--hash=sha256:" in b for b in blocks if "==" in b), name
        assert "find-links" not in text and "file://" not in text, name

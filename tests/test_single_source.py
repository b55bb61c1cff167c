"""Values defined once: files that repeat one (docs, workflows, the pin file) agree with the
constant; and no file of the project names a package registry's or index's host.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from solo_offdiag.solo_adapter.requirements import SOLO_COMMIT, SOLO_PIN

ROOT = Path(__file__).resolve().parents[1]

#: where a solo-learn commit is written, and the files that must write it (at least once each).
_COMMIT_PATTERNS = (
    re.compile(r"solo-learn@([0-9a-f]{7,40})\b"),
    re.compile(r"solo-learn checkout ([0-9a-f]{7,40})\b"),
    re.compile(r"SOLO_LEARN_COMMIT: ([0-9a-f]{7,40})\b"),
    re.compile(r"^commit: ([0-9a-f]{7,40})\b", re.MULTILINE),
)
_PIN_REPEATED_IN = (
    "README.md", "docs/solo_learn.md", "artifact/README.md", "artifact/env/README.md",
    "artifact/env/solo-learn.pin", ".github/workflows/gpu.yml",
)

#: host names of package registries and indexes, built from parts so that this file names none.
_REGISTRY_HOSTS = tuple(".".join(parts) for parts in (
    ("pypi", "org"), ("pypi", "python", "org"), ("files", "pythonhosted", "org"),
    ("download", "pytorch", "org"), ("conda", "anaconda", "org"), ("repo", "anaconda", "com"),
    ("registry", "npmjs", "org"), ("crates", "io"), ("proxy", "golang", "org"),
    ("pypi", "nvidia", "com"), ("pypi", "ngc", "nvidia", "com"),
))


def _project_files() -> list[Path]:
    """The files git tracks (or, outside a git checkout, every file but environments and caches)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60)
        names = [n for n in out.stdout.decode().split("\0") if n]
    except (OSError, subprocess.SubprocessError):
        names = []
    if names:
        return [ROOT / n for n in names if (ROOT / n).is_file()]
    skip = {".git", ".tox", "build", "dist", "results", "__pycache__"}
    return [p for p in ROOT.rglob("*") if p.is_file()
            and not any(part in skip or part.startswith(".venv") for part in p.relative_to(ROOT).parts)]


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", errors="replace")


def test_solo_pin_is_one_value():
    assert re.fullmatch(r"[0-9a-f]{40}", SOLO_PIN) and SOLO_PIN.startswith(SOLO_COMMIT)
    found: dict[str, list[str]] = {}
    for path in _project_files():
        text = _text(path)
        if text is None:
            continue
        for pattern in _COMMIT_PATTERNS:
            for commit in pattern.findall(text):
                found.setdefault(path.relative_to(ROOT).as_posix(), []).append(commit)
    wrong = {name: c for name, commits in found.items() for c in commits if not SOLO_PIN.startswith(c)}
    assert not wrong, f"solo-learn commits other than SOLO_PIN ({SOLO_PIN}, requirements.py): {wrong}"
    missing = [name for name in _PIN_REPEATED_IN if name not in found]
    assert not missing, f"no solo-learn commit found in {missing} (pattern changed?)"


def test_the_commit_patterns_can_fail():
    other = "0123abc"
    assert _COMMIT_PATTERNS[0].findall(f"pip install 'git+https://github.com/vturrisi/solo-learn@{other}'") == [other]
    assert not SOLO_PIN.startswith(other)


def test_no_file_names_a_registry_host():
    hits = []
    for path in _project_files():
        text = _text(path)
        if text is None:
            continue
        lowered = text.lower()
        hits += [f"{path.relative_to(ROOT)}: {host}" for host in _REGISTRY_HOSTS if host in lowered]
    assert not hits, "name the registry (e.g. 'PyPI'), not its host, and keep index URLs out of files:\n" + "\n".join(hits)



def test_the_theory_help_repeats_the_experiment_registry():
    """`solo-offdiag theory --help` lists the experiments without importing torch, from a copy."""
    from solo_offdiag.cli.theory import EXPERIMENT_HELP
    from solo_offdiag.theory.experiments import describe_experiments

    assert describe_experiments() == EXPERIMENT_HELP

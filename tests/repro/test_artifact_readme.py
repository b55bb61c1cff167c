"""artifact/README.md's preset table says what the pinned image config (configs/image_heads.yaml) runs:
per preset its datasets, each method's heads (listed, or counted), the seeds and the number of runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from solo_offdiag.repro.artifact import REPRO_PRESETS
from solo_offdiag.repro.experiments import image_grid

README = Path(__file__).resolve().parents[2] / "artifact" / "README.md"


def _preset_rows(text: str) -> dict[str, list[str]]:
    """``| preset | data | grid | per run |`` rows of the README, by preset: [data, grid]."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and len(cells) == 4 and cells[0] in REPRO_PRESETS:
            rows[cells[0]] = cells[1:3]
    return rows


def _methods_heads(grid: dict) -> dict[str, list[str]]:
    """method -> its heads (the same on every dataset of the method; checked)."""
    heads: dict[str, list[str]] = {}
    for entry in grid["grid"]:
        seen = heads.setdefault(entry["method"], list(entry["heads"]))
        assert seen == list(entry["heads"]), f"{entry['method']}: heads differ between datasets"
    return heads


def _mismatches(data: str, cell: str, grid: dict) -> list[str]:
    wrong = []
    norm = re.sub(r"[^a-z0-9]", "", data.lower())
    wrong += [f"dataset {e['dataset']} not named" for e in grid["grid"] if e["dataset"] not in norm]
    heads = _methods_heads(grid)
    listed = {m: [h.strip() for h in hs.split(",")] for m, hs in re.findall(r"(\w+) × \{([^}]*)\}", cell)}
    counted = {m: int(n) for m, n in re.findall(r"(\w+) × (\d+) heads", cell)}
    if set(listed) | set(counted) != set(heads):
        wrong.append(f"methods {sorted(set(listed) | set(counted))}, config {sorted(heads)}")
    wrong += [f"{m}: heads {hs}, config {heads.get(m)}" for m, hs in listed.items() if hs != heads.get(m)]
    wrong += [f"{m}: {n} heads, config {len(heads.get(m, []))}" for m, n in counted.items()
              if n != len(heads.get(m, []))]
    datasets = {m: [e["dataset"] for e in grid["grid"] if e["method"] == m] for m in heads}
    wrong += [f"{m}: {n} datasets, config {len(datasets.get(m, []))}"
              for m, n in re.findall(r"(\w+) × \d+ heads × (\d+) datasets", cell) if int(n) != len(datasets.get(m, []))]
    seeds, first = int(grid["seeds"]), int(grid.get("first_seed", 0))
    wrong += [f"{n} seed(s), config {seeds}" for n in re.findall(r"× (\d+) seeds?\b", cell) if int(n) != seeds]
    if not re.findall(r"× (\d+) seeds?\b", cell):
        wrong.append("no seed count")
    wrong += [f"seeds {a}-{b}, config {first}-{first + seeds - 1}" for a, b in re.findall(r"\((\d+)–(\d+)\)", cell)
              if (int(a), int(b)) != (first, first + seeds - 1)]
    runs = sum(len(e["heads"]) for e in grid["grid"]) * seeds
    wrong += [f"{n} runs, config {runs}" for n in re.findall(r"\((\d+) runs\)", cell) if int(n) != runs]
    return wrong


@pytest.mark.parametrize("preset", REPRO_PRESETS)
def test_the_readme_preset_table_matches_the_image_config(preset):
    rows = _preset_rows(README.read_text(encoding="utf-8"))
    assert preset in rows, f"artifact/README.md has no preset table row for {preset!r}"
    data, cell = rows[preset]
    wrong = _mismatches(data, cell, image_grid(preset))
    assert not wrong, f"artifact/README.md, preset {preset} ({cell!r}) vs configs/image_heads.yaml: {wrong}"


def test_the_readme_check_fails_on_a_wrong_list():
    grid = image_grid("medium")
    data = "the same digits and recipe as smoke"
    heads = ", ".join(_methods_heads(grid)["byol_offdiag"])
    first, seeds = grid["first_seed"], grid["seeds"]
    good = f"byol_offdiag × {{{heads}}} × {seeds} seeds ({first}–{first + seeds - 1})"
    assert _mismatches(data, good, grid) == []
    assert _mismatches(data, good.replace("linear, ", ""), grid)  # a head left out
    assert _mismatches(data, good.replace(f"× {seeds} seeds", "× 9 seeds"), grid)
    assert _mismatches(data, good.replace(f"({first}–", "(0–"), grid)
    assert _mismatches("CIFAR-10", good, grid)  # the dataset not named
    assert _mismatches(data, "byol_offdiag × 6 heads × 3 seeds", grid)
    assert _mismatches(data, "byol_offdiag × 7 heads × 2 datasets × 3 seeds", grid)


ROOT = README.parents[1]


def _table_rows(text: str, key: int = 0) -> dict[str, list[str]]:
    """Cell ``key`` (bold and parentheses dropped) -> the row's cells, for every Markdown table row."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows[re.sub(r"\*|\s*\(.*\)", "", cells[key]).strip()] = cells
    return rows


def test_the_readme_results_table_is_the_linked_snapshots():
    """The top-level README's medium table repeats numbers of the results snapshot it links: each
    head's probe, kNN and RankMe cells equal the snapshot's tables/c1_c2.md (the code's output)."""
    text = (ROOT / "README.md").read_text()
    (link,) = set(re.findall(r"\(artifact/results/(medium-[0-9-]+)/README\.md\)", text))
    snapshot = _table_rows((ROOT / "artifact" / "results" / link / "tables" / "c1_c2.md").read_text(), key=2)
    readme = _table_rows(text[text.index("## Results"):])
    heads = [h for h in snapshot if h != "head"]
    assert heads and all(h in readme for h in heads), (heads, list(readme))
    for head in heads:
        assert [c.strip("*") for c in readme[head][1:4]] == snapshot[head][3:6], head  # bold allowed

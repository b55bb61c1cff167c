"""A dated results snapshot of a finished preset, small enough to keep in the repository.

``solo-offdiag repro snapshot --preset P --results R --out DIR`` copies what a reader needs to see
the claims without re-running anything: the verdicts (``check.txt``/``check.json``), every table,
the image figures and the theory figures (without the per-seed grids, the large ones), each
theory experiment's ``summary.json`` and the machine record (``env.json``), and writes
``DIR/README.md``: when and with which commit the runs were made, their wall times, the claim
verdicts, the tables and the figures. It never runs or recomputes anything, and it refuses a
preset whose ``repro all`` (or ``repro check``) has not finished: every number in the snapshot
is one that the code wrote. Checkpoints, trajectories and data are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solo_offdiag.io import atomic_open, atomic_write_text
from solo_offdiag.repro.runner import DONE, read_done, read_json_object

__all__ = ["SnapshotError", "THEORY_FIGURES_LEFT_OUT", "write_snapshot"]

#: per-seed panels of every arm (~0.2-0.4 MB each): the per-arm figures show the same dynamics.
THEORY_FIGURES_LEFT_OUT = ("dynamics_grid.png",)


class SnapshotError(ValueError):
    """The results folder has nothing finished to snapshot (the message says what to run)."""


def _runs(preset_dir: Path) -> list[dict[str, Any]]:
    """Every finished run of the preset (its done.json, with its folder relative to the preset)."""
    runs = []
    for done_path in sorted(preset_dir.glob(f"**/{DONE}")):
        if "pretrain" in done_path.relative_to(preset_dir).parts:
            continue
        done = read_done(done_path.parent)
        if done is not None:
            runs.append({**done, "_key": done_path.parent.relative_to(preset_dir).as_posix()})
    return runs


def _copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(dst, "wb") as handle:
        handle.write(src.read_bytes())
    return dst


def _wall(runs: Sequence[dict[str, Any]], kind: str) -> str:
    times = [float(r.get("wall_time_s") or 0.0) for r in runs if r["_key"].startswith(kind + "/")]
    if not times:
        return f"{kind}: no runs"
    return (f"{kind}: {len(times)} runs, {sum(times) / 60:.1f} min in all (run times added up; with "
            f"`--jobs N` the wall clock is shorter), {min(times):.0f}-{max(times):.0f} s each")


def _readme(preset: str, preset_dir: Path, out: Path, runs: Sequence[dict[str, Any]],
            figures: Sequence[Path], command: str | None) -> str:
    env = read_json_object(preset_dir / "env.json")
    git = env.get("git") or {}
    shas = sorted({(r.get("git") or {}).get("sha", "?")[:10] for r in runs})
    finished = sorted(r.get("finished_utc", "") for r in runs if r.get("finished_utc"))
    packages = env.get("packages") or {}
    tables = out / "tables"

    def table(name: str) -> str:
        path = tables / f"{name}.md"
        return path.read_text().strip() if path.is_file() else "(no table)"

    lines = [
        f"# Results snapshot: preset `{preset}`",
        "",
        "Written by `solo-offdiag repro snapshot` from a finished results folder; every number below is",
        "the code's output (nothing was edited by hand). Regenerate it with the commands at the end.",
        "",
        f"* runs finished: {finished[0] if finished else '?'} to {finished[-1] if finished else '?'} (UTC)",
        f"* commit of the runs: {', '.join(shas)} (the check/tables/figures step: "
        f"{str(git.get('sha', '?'))[:10]}{', with uncommitted changes' if git.get('dirty') else ''})",
        f"* machine: {env.get('cpu_count', '?')} CPU cores, CUDA "
        f"{'yes' if (env.get('accelerator') or {}).get('cuda_available') else 'no'}; "
        + ", ".join(f"{k} {packages[k]}" for k in ("torch", "lightning", "solo-learn", "solo-offdiag")
                    if k in packages),
        f"* {_wall(runs, 'image')}",
        f"* {_wall(runs, 'theory')}",
        "",
        "## Claim verdicts (`check.txt`)",
        "",
        "```",
        (out / "check.txt").read_text().rstrip(),
        "```",
        "",
        "## Image experiment: mean ± std over seeds (`tables/c1_c2.md`)",
        "",
        table("c1_c2"),
        "",
        "## Image experiment: every run (`tables/image_runs.md`)",
        "",
        table("image_runs"),
        "",
        "## Theory experiments (`tables/theory.md`)",
        "",
        table("theory"),
        "",
        "## Figures",
        "",
    ]
    for fig in figures:
        rel = fig.relative_to(out).as_posix()
        lines += [f"### {rel}", "", f"![{rel}]({rel})", ""]
    lines += ["## Commands", "", "```bash"]
    if command:
        lines.append(command)
    lines += [f"solo-offdiag repro snapshot --preset {preset} --results <results> --out <this folder>", "```", ""]
    return "\n".join(lines)


def write_snapshot(preset_dir: Path, out: Path, preset: str, command: str | None = None) -> list[Path]:
    """Copy the results of ``preset_dir`` (``<results>/<preset>``) into ``out`` and write its
    README; returns the files written. ``command``: the command that produced the results, quoted
    in the README. Raises :class:`SnapshotError` when the preset has no verdicts yet."""
    preset_dir, out = Path(preset_dir), Path(out)
    if not (preset_dir / "check.txt").is_file() or not (preset_dir / "check.json").is_file():
        raise SnapshotError(f"{preset_dir}: no check.txt/check.json; run `solo-offdiag repro all --preset "
                            f"{preset}` (or `repro check`) on these results first")
    if out.resolve() == preset_dir.resolve() or preset_dir.resolve() in out.resolve().parents:
        raise SnapshotError(f"--out {out}: must not be inside the results folder {preset_dir}")
    runs = _runs(preset_dir)
    written = [_copy(preset_dir / name, out / name) for name in ("check.txt", "check.json", "env.json")
               if (preset_dir / name).is_file()]
    written += [_copy(p, out / "tables" / p.name) for p in sorted((preset_dir / "tables").glob("*"))
                if p.is_file()]
    figures = [_copy(p, out / "figures" / p.name) for p in sorted((preset_dir / "figures").glob("*.png"))]
    for theory_dir in sorted(p for p in (preset_dir / "theory").glob("*") if p.is_dir()):
        if (theory_dir / "summary.json").is_file():
            written.append(_copy(theory_dir / "summary.json", out / "theory" / theory_dir.name / "summary.json"))
        figures += [_copy(p, out / "theory" / theory_dir.name / p.name) for p in sorted(theory_dir.glob("*.png"))
                    if p.name not in THEORY_FIGURES_LEFT_OUT]
    written += figures
    readme = out / "README.md"
    atomic_write_text(readme, _readme(preset, preset_dir, out, runs, figures, command))
    return [*written, readme]

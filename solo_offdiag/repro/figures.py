"""Figures of the image experiment, redrawn offline from the runs' analysis folders.

* ``c3_head_trajectory.png`` (claim C3): the off-diagonal magnitude ``||offdiag(W)||_F`` of the
  linear heads over training (``head/offdiag_fro`` of ``analysis/metrics.csv``; for the offdiag
  head this is ``||W - I||_F``), one panel per dataset, one line per run with its peak marked,
  one colour and legend entry per head (its seeds' values listed); heads whose off-diagonal stays
  0 (identity, diagonal) are named in the title, not drawn;
* ``rank_spectrum.png`` (claim C2): per dataset, RankMe of z over training per head (left) and
  the final sorted covariance eigenvalues of z, log scale (right; from ``analysis/spectrum.npz``),
  with one legend entry per head.

The theory figures are written by the theory experiments into ``theory/<name>/``;
:func:`write_figures` lists them in ``figures/index.md`` next to these.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from solo_offdiag.io import atomic_open, atomic_write_text  # noqa: E402
from solo_offdiag.repro.tables import run_order  # noqa: E402

__all__ = ["head_trajectory_figure", "rank_spectrum_figure", "write_figures"]

_DPI = 130
_COLORS = {"mlp": "tab:blue", "linear": "tab:orange", "offdiag": "tab:red", "diagonal": "tab:purple",
           "identity": "tab:gray", "directpred": "tab:green", "directcopy": "tab:olive"}
#: dashed/dotted styles keep overlapping curves (e.g. a collapsed offdiag and identity) visible.
_STYLES = {"identity": "--", "diagonal": "-.", "directcopy": ":", "directpred": ":"}


def _group(r: dict[str, Any]) -> str:
    """The legend entry of a run: its method and head (the seeds of a head share a colour)."""
    return f"{r.get('method', '').replace('_offdiag', '')} {r['head']}"


def _seeds_text(seeds: Sequence[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(str(s) for s in seeds)}"


def _grouped_legend(ax: Any, entries: dict[str, tuple[Any, list[int], list[str]]], **kwargs: Any) -> None:
    """One legend entry per head: ``entries[group] = (a line, its seeds, per-seed value texts)``,
    outside the axes on the right (many runs would hide the curves)."""
    handles, labels = [], []
    for group, (line, seeds, values) in entries.items():
        handles.append(line)
        label = f"{group} ({_seeds_text(seeds)})" if seeds else group
        labels.append(label + (f": {'; '.join(values)}" if values else ""))
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              **kwargs)


def _save(fig: Any, path: Path) -> Path:
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _metrics(run: dict[str, Any]) -> dict[str, np.ndarray] | None:
    from solo_offdiag.analysis.writer import read_metrics_csv
    from solo_offdiag.repro.experiments import solo_run_dir

    path = solo_run_dir(run) / "analysis" / "metrics.csv"
    return read_metrics_csv(path) if path.is_file() else None


def _datasets(records: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({r["dataset"] for r in records})


def head_trajectory_figure(records: Sequence[dict[str, Any]], path: Path,
                           c3: dict[str, Any] | None = None) -> Path | None:
    """C3 figure; None when no run has a head trajectory.

    ``c3``: the C3 image criterion's parameters of the preset (``peak_over_final``,
    ``peak_position_max``; :func:`solo_offdiag.repro.claims.criterion_params`), drawn as the
    threshold lines; None draws none. The peak statistics are :func:`head_offdiag_summary`'s.
    """
    from solo_offdiag.repro.experiments import head_offdiag_summary, peak_over_final

    datasets = [d for d in _datasets(records)
                if any(r["dataset"] == d and r.get("head_offdiag") for r in records)]
    if not datasets:
        return None
    fig, axes = plt.subplots(1, len(datasets), figsize=(10.0 * len(datasets), 4.2), squeeze=False,
                             layout="constrained")
    for ax, ds in zip(axes[0], datasets):
        last_step = 0
        entries: dict[str, tuple[Any, list[int], list[str]]] = {}
        flat: list[str] = []  # heads without an off-diagonal (identity, diagonal): nothing to draw
        for r in sorted((r for r in records if r["dataset"] == ds), key=run_order):
            m = _metrics(r)
            if m is None or "head/offdiag_fro" not in m:
                continue
            ok = np.isfinite(m["head/offdiag_fro"])
            if ok.sum() < 2:
                continue
            steps, vals = m["step"][ok], m["head/offdiag_fro"][ok]
            if r["head"] == "identity" or not np.any(vals):
                flat += [r["head"]] if r["head"] not in flat else []
                continue
            last_step = max(last_step, int(steps[-1]))
            color = _COLORS.get(r["head"], "black")
            stats = head_offdiag_summary([int(s) for s in steps], [float(v) for v in vals])
            (line,) = ax.plot(steps, vals, _STYLES.get(r["head"], "-"), color=color, lw=1.5, alpha=0.9)
            ax.plot(stats["peak_step"], stats["peak"], "o", color=color, ms=6)
            _, seeds, values = entries.setdefault(_group(r), (line, [], []))
            seeds.append(r["seed"])
            values.append(f"{peak_over_final(stats):.2f}|{stats['peak_position']:.0%}")
            if r["head"] == "offdiag" and c3:  # the C3 criterion: end at <= peak / peak_over_final
                ax.axhline(stats["peak"] / c3["peak_over_final"], color=color, lw=0.8, ls=":", alpha=0.7)
        span = None
        if last_step and c3:
            latest = c3["peak_position_max"]
            span = ax.axvspan(latest * last_step, last_step, color="0.85", alpha=0.5, lw=0)
        not_drawn = f"\n(off-diagonal fixed at 0, not drawn: {', '.join(flat)})" if flat else ""
        ax.set_title(f"{ds}: ||offdiag(W)||_F of the prediction head{not_drawn}", fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel("||offdiag(W)||_F  (offdiag head: ||W - I||_F)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        legend = {group: (line, seeds, [f"peak/final {', '.join(v.split('|')[0] for v in values)}; "
                                        f"peak at {', '.join(v.split('|')[1] for v in values)}"])
                  for group, (line, seeds, values) in entries.items()}
        if span is not None:
            legend[f"last {1 - c3['peak_position_max']:.0%} of training (a peak here fails C3)"] = (span, [], [])
        _grouped_legend(ax, legend)
    threshold = f"; dotted: offdiag peak / {c3['peak_over_final']:g}" if c3 else ""
    fig.suptitle(f"C3: off-diagonal magnitude rises then falls? (dot: peak{threshold})", fontsize=10)
    return _save(fig, path)


def rank_spectrum_figure(records: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """C2 figure; None when no run has spectrum data."""
    from solo_offdiag.analysis.writer import load_npz
    from solo_offdiag.repro.experiments import solo_run_dir

    datasets = _datasets(records)
    rows = []
    for ds in datasets:
        runs = []
        for r in sorted((r for r in records if r["dataset"] == ds), key=run_order):
            npz = solo_run_dir(r) / "analysis" / "spectrum.npz"
            if npz.is_file():
                runs.append((r, load_npz(npz)))
        if runs:
            rows.append((ds, runs))
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), 2, figsize=(14, 4.0 * len(rows)), squeeze=False, layout="constrained")
    for (ds, runs), (ax_rank, ax_spec) in zip(rows, axes):
        entries: dict[str, tuple[Any, list[int], list[str]]] = {}
        for r, data in runs:
            color = _COLORS.get(r["head"], "black")
            style = _STYLES.get(r["head"], "-")
            line = None
            final = "no RankMe"
            if "rankme/z" in data:
                ok = np.isfinite(data["rankme/z"])
                if ok.any():
                    final = f"{data['rankme/z'][ok][-1]:.1f}"
                (line,) = ax_rank.plot(data["steps"][ok], data["rankme/z"][ok], style, color=color, lw=1.5)
            if "eigvals/z" in data and len(data["eigvals/z"]):
                eig = np.sort(np.asarray(data["eigvals/z"][-1], dtype=float))[::-1]
                eig = eig[np.isfinite(eig) & (eig > 0)]
                if eig.size:
                    (spec,) = ax_spec.semilogy(np.arange(1, eig.size + 1), eig / eig[0], style, color=color, lw=1.5)
                    line = line or spec
            if line is not None:
                _, seeds, values = entries.setdefault(_group(r), (line, [], []))
                seeds.append(r["seed"])
                values.append(final)
        ax_rank.set_title(f"{ds}: RankMe of z over training", fontsize=10)
        ax_rank.set_ylim(bottom=0)
        ax_rank.set_xlabel("training step")
        ax_rank.set_ylabel("RankMe(z)")
        ax_spec.set_title(f"{ds}: final covariance spectrum of z (normalised)", fontsize=10)
        ax_spec.set_xlabel("index i")
        ax_spec.set_ylabel("lambda_i / lambda_1")
        for ax in (ax_rank, ax_spec):
            ax.grid(alpha=0.3)
        _grouped_legend(ax_spec, {group: (line, seeds, [f"final RankMe {', '.join(values)}"])
                                  for group, (line, seeds, values) in entries.items()})
    fig.suptitle("C2: effective rank and spectrum of the projector output per head "
                 "(dimensional collapse = low RankMe, fast-decaying spectrum)", fontsize=10)
    return _save(fig, path)


def write_figures(preset_dir: Path, preset: str | None = None) -> list[Path]:
    """Draw the image figures into ``<preset_dir>/figures`` and index every figure of the preset
    (``preset``: whose C3 thresholds to draw; default: the folder's name)."""
    from solo_offdiag.repro.artifact import REPRO_PRESETS
    from solo_offdiag.repro.check import image_records
    from solo_offdiag.repro.claims import criterion_params

    preset = preset or preset_dir.name
    c3 = criterion_params("c3_rise_fall", preset) if preset in REPRO_PRESETS else None
    folder = preset_dir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    records = image_records(preset_dir)
    made = [p for p in (head_trajectory_figure(records, folder / "c3_head_trajectory.png", c3),
                        rank_spectrum_figure(records, folder / "rank_spectrum.png")) if p is not None]
    theory = sorted((preset_dir / "theory").glob("*/*.png"))
    lines = ["# Figures", "", "## Image experiment (claims C2, C3)", ""]
    lines += [f"- [{p.name}]({p.name})" for p in made] or ["- none (no finished image runs)"]
    lines += ["", "## Theory experiments (claims C3-C8)", ""]
    lines += [f"- [{p.parent.name}/{p.name}](../theory/{p.parent.name}/{p.name})" for p in theory] or ["- none"]
    atomic_write_text(folder / "index.md", "\n".join(lines) + "\n")
    return [*made, *theory]

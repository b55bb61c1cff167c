"""Figures of the image experiment, redrawn offline from the runs' analysis folders.

* ``c3_head_trajectory.png`` (claim C3): ``||W - I||_F`` of the linear heads over training, one
  panel per dataset, one line per head and seed (from ``analysis/metrics.csv``,
  ``head/offdiag_fro``), with the peak marked;
* ``rank_spectrum.png`` (claim C2): per dataset, RankMe of z over training per head (left) and
  the final sorted covariance eigenvalues of z, log scale (right; from ``analysis/spectrum.npz``).

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
from solo_offdiag.repro.tables import HEAD_ORDER  # noqa: E402

__all__ = ["head_trajectory_figure", "rank_spectrum_figure", "write_figures"]

_DPI = 130
_COLORS = {"mlp": "tab:blue", "linear": "tab:orange", "offdiag": "tab:red", "diagonal": "tab:purple",
           "identity": "tab:gray", "directpred": "tab:green", "directcopy": "tab:olive"}
#: dashed/dotted styles keep overlapping curves (e.g. a collapsed offdiag and identity) visible.
_STYLES = {"identity": "--", "diagonal": "-.", "directcopy": ":", "directpred": ":"}


def _run_order(r: dict[str, Any]) -> tuple[Any, ...]:
    head = r["head"]
    return (r.get("method", ""), HEAD_ORDER.index(head) if head in HEAD_ORDER else len(HEAD_ORDER),
            head, r["seed"])


def _label(r: dict[str, Any]) -> str:
    return f"{r.get('method', '').replace('_offdiag', '')} {r['head']} (seed {r['seed']})"


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
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.6 * len(datasets), 4.2), squeeze=False,
                             layout="constrained")
    for ax, ds in zip(axes[0], datasets):
        last_step = 0
        for r in sorted((r for r in records if r["dataset"] == ds), key=_run_order):
            m = _metrics(r)
            if m is None or "head/offdiag_fro" not in m:
                continue
            ok = np.isfinite(m["head/offdiag_fro"])
            if ok.sum() < 2 or r["head"] == "identity":
                continue
            steps, vals = m["step"][ok], m["head/offdiag_fro"][ok]
            last_step = max(last_step, int(steps[-1]))
            color = _COLORS.get(r["head"], "black")
            stats = head_offdiag_summary([int(s) for s in steps], [float(v) for v in vals])
            ax.plot(steps, vals, _STYLES.get(r["head"], "-"), color=color, lw=1.5, alpha=0.9,
                    label=f"{_label(r)}: peak/final {peak_over_final(stats):.2f}, "
                          f"peak at {stats['peak_position']:.0%}")
            ax.plot(stats["peak_step"], stats["peak"], "o", color=color, ms=6)
            if r["head"] == "offdiag" and c3:  # the C3 criterion: end at <= peak / peak_over_final
                ax.axhline(stats["peak"] / c3["peak_over_final"], color=color, lw=0.8, ls=":", alpha=0.7)
        if last_step and c3:
            latest = c3["peak_position_max"]
            ax.axvspan(latest * last_step, last_step, color="0.85", alpha=0.5, lw=0,
                       label=f"last {1 - latest:.0%} of training (a peak here fails C3)")
        ax.set_title(f"{ds}: ||W - I||_F of the prediction head", fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylabel("||W - I||_F")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
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
        for r in sorted((r for r in records if r["dataset"] == ds), key=_run_order):
            npz = solo_run_dir(r) / "analysis" / "spectrum.npz"
            if npz.is_file():
                runs.append((r, load_npz(npz)))
        if runs:
            rows.append((ds, runs))
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 4.0 * len(rows)), squeeze=False, layout="constrained")
    for (ds, runs), (ax_rank, ax_spec) in zip(rows, axes):
        for r, data in runs:
            color = _COLORS.get(r["head"], "black")
            style = _STYLES.get(r["head"], "-")
            label = _label(r)
            if "rankme/z" in data:
                ok = np.isfinite(data["rankme/z"])
                if ok.any():
                    label += f": final RankMe {data['rankme/z'][ok][-1]:.1f}"
                ax_rank.plot(data["steps"][ok], data["rankme/z"][ok], style, color=color, lw=1.5, label=label)
            if "eigvals/z" in data and len(data["eigvals/z"]):
                eig = np.sort(np.asarray(data["eigvals/z"][-1], dtype=float))[::-1]
                eig = eig[np.isfinite(eig) & (eig > 0)]
                if eig.size:
                    ax_spec.semilogy(np.arange(1, eig.size + 1), eig / eig[0], style, color=color, lw=1.5,
                                     label=_label(r))
        ax_rank.set_title(f"{ds}: RankMe of z over training", fontsize=10)
        ax_rank.set_ylim(bottom=0)
        ax_rank.set_xlabel("training step")
        ax_rank.set_ylabel("RankMe(z)")
        ax_spec.set_title(f"{ds}: final covariance spectrum of z (normalised)", fontsize=10)
        ax_spec.set_xlabel("index i")
        ax_spec.set_ylabel("lambda_i / lambda_1")
        for ax in (ax_rank, ax_spec):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
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

"""Figures of the theory experiments (matplotlib, Agg backend), drawn by :mod:`solo_offdiag.repro.theory_output`.

Every figure has labelled axes, a legend, and the detected phases marked as vertical lines:
T1 (v1 learned), the substitution peak of E21, T_v2 (v2 learned), and the return of E towards I.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from solo_offdiag.io import atomic_open  # noqa: E402
from solo_offdiag.theory.model import Trajectory  # noqa: E402

__all__ = ["plot_dynamics", "plot_grid", "plot_offdiag", "plot_pass_by_seed", "plot_scaling", "save"]

_PHASE_STYLE = {
    "t1": ("T1: v1 learned", "tab:blue", "--"),
    "t_sub_peak": ("peak |E21|", "tab:red", ":"),
    "t_v2": ("T_v2: v2 learned", "tab:green", "--"),
    "t_return": ("E back towards I", "tab:purple", "-."),
}


def save(fig: Any, path: Path) -> Path:
    """Write ``fig`` as PNG atomically and close it. Every figure here lays itself out
    (``tight_layout`` or fixed margins), so no ``bbox_inches="tight"``: that costs a second full
    draw (about half the drawing time of the grids, docs/theory.md "Speed")."""
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
    return path


def _mark_phases(ax: Any, phases: Mapping[str, Any], labels: bool) -> None:
    for key, (label, color, style) in _PHASE_STYLE.items():
        t = phases.get(key)
        if t is not None and (key != "t_sub_peak" or abs(phases.get("e21_peak", 0)) > 0):
            ax.axvline(t, color=color, linestyle=style, linewidth=1.0, label=label if labels else None)


def plot_dynamics(traj: Trajectory, phases: Mapping[str, Any], title: str) -> Any:
    """Alignments |<w_j, v_l>|/||w_j|| (top) and the head entries E21, E12, ||E-I|| (bottom)."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7.5, 6.0), sharex=True)
    m = traj.alignment.shape[1]
    colors = plt.cm.tab10(np.arange(max(m, 2)) % 10)
    for j in range(min(m, 8)):
        ax1.plot(traj.steps, np.abs(traj.alignment[:, j, 0]), color=colors[j], label=f"neuron {j + 1}: v1")
        ax1.plot(traj.steps, np.abs(traj.alignment[:, j, 1]), color=colors[j], linestyle="--",
                 label=f"neuron {j + 1}: v2")
    _mark_phases(ax1, phases, labels=True)
    ax1.set_ylabel("|cos(w_j, v_l)|")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_title(title)
    ax1.legend(fontsize=7, ncol=2, loc="center right")
    if m > 1:
        ax2.plot(traj.steps, traj.head[:, 1, 0], color="tab:red", label="E21")
        ax2.plot(traj.steps, traj.head[:, 0, 1], color="tab:orange", label="E12")
    ax2.plot(traj.steps, traj.offdiag_norm, color="black", linewidth=1.5, label="||E - I||_F")
    _mark_phases(ax2, phases, labels=False)
    ax2.axhline(0, color="grey", linewidth=0.5)
    ax2.set_xlabel("SGD step")
    ax2.set_ylabel("head entries")
    ax2.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_grid(
    trajs: Sequence[Trajectory], phases: Sequence[Mapping[str, Any]], titles: Sequence[str], suptitle: str,
    arms: Sequence[str] | None = None,
) -> Any:
    """Every run of an experiment: one column per seed, two rows per arm (alignments, then head
    entries), the phases marked, one shared legend under the panels.

    ``arms[i]`` is the arm of run ``i`` (runs of one arm consecutive); None = one arm."""
    arms = list(arms) if arms is not None else ["runs"] * len(trajs)
    arm_names = list(dict.fromkeys(arms))
    groups = [[i for i, a in enumerate(arms) if a == name] for name in arm_names]
    ncol = max(len(g) for g in groups)
    nrow = 2 * len(groups)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.9 * ncol, 2.3 * nrow + 0.8), sharex=True, squeeze=False)
    handles: dict[str, Any] = {}
    for r, group in enumerate(groups):
        for c in range(ncol):
            ax1, ax2 = axes[2 * r, c], axes[2 * r + 1, c]
            if c >= len(group):
                ax1.axis("off")
                ax2.axis("off")
                continue
            i = group[c]
            traj, ph = trajs[i], phases[i]
            for j in range(min(traj.alignment.shape[1], 2)):
                ax1.plot(traj.steps, np.abs(traj.alignment[:, j, 0]), color=f"C{j}", label=f"neuron {j + 1}: v1")
                ax1.plot(traj.steps, np.abs(traj.alignment[:, j, 1]), color=f"C{j}", linestyle="--",
                         label=f"neuron {j + 1}: v2")
            _mark_phases(ax1, ph, labels=True)
            ax1.axhline(0.8, color="grey", linewidth=0.5, linestyle=":")
            ax1.set_ylim(-0.02, 1.02)
            ax1.set_title(titles[i], fontsize=9)
            if traj.head.shape[-1] > 1:
                ax2.plot(traj.steps, traj.head[:, 1, 0], color="tab:red", label="E21")
                ax2.plot(traj.steps, traj.head[:, 0, 1], color="tab:orange", label="E12")
            ax2.plot(traj.steps, traj.offdiag_norm, color="black", linewidth=0.8, label="||E - I||_F")
            _mark_phases(ax2, ph, labels=False)
            ax2.axhline(0, color="grey", linewidth=0.5)
            if 2 * r + 1 == nrow - 1 or c >= len(groups[-1]):
                ax2.set_xlabel("SGD step")
            if c == 0:
                ax1.set_ylabel(f"{arm_names[r]}\n|cos(w_j, v_l)|", fontsize=9)
                ax2.set_ylabel("head entries", fontsize=9)
            for ax in (ax1, ax2):
                ax.tick_params(labelsize=7)
                for h, lab in zip(*ax.get_legend_handles_labels()):
                    handles.setdefault(lab, h)
    fig.suptitle(suptitle)
    fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=min(len(handles), 6),
               fontsize=8, frameon=False)
    # fixed margins in inches instead of tight_layout (which measures every tick label of every
    # panel: ~3x slower for the 4 x 8 grids, docs/theory.md "Speed")
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.8 / width, right=1 - 0.15 / width, bottom=0.95 / height, top=1 - 0.55 / height,
                        wspace=0.25, hspace=0.3)
    return fig


def plot_offdiag(traj: Trajectory, phases: Mapping[str, Any], title: str) -> Any:
    """Wide head: ||E - I||_F, the largest |E_jk| and the per-neuron best alignments over time."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7.5, 6.0), sharex=True)
    off = traj.head - np.eye(traj.head.shape[-1])
    ax1.plot(traj.steps, traj.offdiag_norm, color="black", label="||E - I||_F")
    ax1.plot(traj.steps, np.abs(off).max(axis=(1, 2)), color="tab:red", label="max |E_jk|, j != k")
    _mark_phases(ax1, phases, labels=True)
    ax1.set_ylabel("off-diagonal magnitude")
    ax1.set_title(title)
    ax1.legend(fontsize=7)
    a = np.abs(traj.alignment)
    ax2.plot(traj.steps, (a[:, :, 0] >= 0.8).mean(axis=1), label="fraction of neurons on v1")
    ax2.plot(traj.steps, (a[:, :, 1] >= 0.8).mean(axis=1), label="fraction of neurons on v2")
    ax2.set_xlabel("SGD step")
    ax2.set_ylabel("fraction (|cos| >= 0.8)")
    ax2.set_ylim(-0.02, 1.02)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_scaling(
    x: np.ndarray, y: np.ndarray, slope: float, intercept: float, xlabel: str, ylabel: str, title: str,
    points: tuple[np.ndarray, np.ndarray] | None = None, target: float | None = None, note: str | None = None,
) -> Any:
    """Log-log scatter of medians with the least-squares line; the fitted slope (and the paper's
    slope ``target``, drawn as a dotted reference through the data) annotated on the axes. Medians
    that are undefined (the event never happened within the run) are listed under the plot, and
    ``note`` (e.g. how many runs never reached the event) is printed under the axes."""
    fig, ax = plt.subplots(figsize=(5.4, 4.4))
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(y) & (y > 0)
    if points is not None:
        px, py = np.asarray(points[0], dtype=float), np.asarray(points[1], dtype=float)
        fin = np.isfinite(py) & (py > 0)
        ax.scatter(px[fin], py[fin], s=12, color="grey", alpha=0.5, label="single seeds")
    ax.scatter(x[ok], y[ok], color="tab:blue", zorder=3, label="median over seeds")
    xs = np.geomspace(x[ok].min(), x[ok].max(), 50)
    ax.plot(xs, np.exp(intercept) * xs**slope, color="tab:red", label=f"least-squares fit, slope {slope:.2f}")
    if target is not None:
        x0, y0 = np.exp(np.log(x[ok]).mean()), np.exp(np.log(y[ok]).mean())
        ax.plot(xs, y0 * (xs / x0) ** target, color="tab:green", linestyle=":",
                label=f"paper's slope {target:g} (reference)")
    ax.text(0.03, 0.95, f"log-log slope = {slope:.2f}" + (f"\n(paper: {target:g})" if target is not None else ""),
            transform=ax.transAxes, va="top", fontsize=10,
            bbox={"facecolor": "white", "edgecolor": "grey", "alpha": 0.8})
    missing = [f"{v:g}" for v in x[~ok]]
    if missing:
        ax.text(0.5, -0.22, f"no median at {xlabel} = {', '.join(missing)} (event not reached in the run)",
                transform=ax.transAxes, ha="center", fontsize=8, color="tab:red")
    if note:
        ax.text(0.5, -0.28 if missing else -0.22, note, transform=ax.transAxes, ha="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_pass_by_seed(rows: Sequence[tuple[str, Sequence[bool]]], seed_offset: int = 0) -> Any:
    """Pass (green) / fail (red) of each claim's per-seed test, one row per claim, one column per
    seed (seeds ``seed_offset ...``), with passes/n at the right."""
    n = max(len(r[1]) for r in rows)
    grid = np.full((len(rows), n), np.nan)
    for i, (_, ok) in enumerate(rows):
        grid[i, : len(ok)] = np.asarray(ok, dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * n + 1.2, 0.9 + 0.42 * len(rows)))
    cmap = matplotlib.colors.ListedColormap(["tab:red", "tab:green"])
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.set_xticks(range(n), [str(seed_offset + k) for k in range(n)], fontsize=7)
    ax.set_xlabel("seed")
    for i, (_, ok) in enumerate(rows):
        ax.text(n - 0.3, i, f" {sum(ok)}/{len(ok)}", va="center", fontsize=8)
    ax.set_xlim(-0.5, n + 0.9)
    ax.set_title("per-seed pass (green) / fail (red) of each theory claim")
    fig.tight_layout()
    return fig

"""Figures of the theory experiments (matplotlib, Agg backend, imported lazily by experiments).

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

__all__ = ["plot_dynamics", "plot_grid", "plot_offdiag", "plot_scaling", "save"]

_PHASE_STYLE = {
    "t1": ("T1: v1 learned", "tab:blue", "--"),
    "t_sub_peak": ("peak |E21|", "tab:red", ":"),
    "t_v2": ("T_v2: v2 learned", "tab:green", "--"),
    "t_return": ("E back towards I", "tab:purple", "-."),
}


def save(fig: Any, path: Path) -> Path:
    """Write ``fig`` as PNG atomically and close it."""
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110, bbox_inches="tight")
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
    ax2.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def plot_grid(
    trajs: Sequence[Trajectory], phases: Sequence[Mapping[str, Any]], titles: Sequence[str], suptitle: str
) -> Any:
    """One column per run: alignments on top, head entries below, phases marked."""
    n = len(trajs)
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n, 5.2), sharex="col", squeeze=False)
    for c, (traj, ph, title) in enumerate(zip(trajs, phases, titles)):
        ax1, ax2 = axes[0, c], axes[1, c]
        for j in range(min(traj.alignment.shape[1], 2)):
            ax1.plot(traj.steps, np.abs(traj.alignment[:, j, 0]), color=f"C{j}", label=f"n{j + 1}: v1")
            ax1.plot(traj.steps, np.abs(traj.alignment[:, j, 1]), color=f"C{j}", linestyle="--",
                     label=f"n{j + 1}: v2")
        _mark_phases(ax1, ph, labels=c == 0)
        ax1.set_ylim(-0.02, 1.02)
        ax1.set_title(title, fontsize=9)
        if traj.head.shape[-1] > 1:
            ax2.plot(traj.steps, traj.head[:, 1, 0], color="tab:red", label="E21")
            ax2.plot(traj.steps, traj.head[:, 0, 1], color="tab:orange", label="E12")
        _mark_phases(ax2, ph, labels=False)
        ax2.set_xlabel("SGD step")
        if c == 0:
            ax1.set_ylabel("|cos(w_j, v_l)|")
            ax2.set_ylabel("head entries")
            ax1.legend(fontsize=6, ncol=2, loc="center right")
            ax2.legend(fontsize=6)
    fig.suptitle(suptitle)
    fig.tight_layout()
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
    points: tuple[np.ndarray, np.ndarray] | None = None,
) -> Any:
    """Log-log scatter of medians with the least-squares line and its slope in the legend."""
    fig, ax = plt.subplots(figsize=(5.0, 4.0))
    if points is not None:
        ax.scatter(points[0], points[1], s=10, color="grey", alpha=0.5, label="seeds")
    ax.scatter(x, y, color="tab:blue", zorder=3, label="median over seeds")
    xs = np.geomspace(x.min(), x.max(), 50)
    ax.plot(xs, np.exp(intercept) * xs**slope, color="tab:red", label=f"fit: slope {slope:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig

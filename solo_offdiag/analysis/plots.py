"""Figures of an analysis folder (``metrics.csv`` and the ``.npz`` files), drawn offline.

:func:`plot_run` writes one PNG per figure that has data and returns their paths:

==========================  ======================================================================
file                        content
==========================  ======================================================================
head_trajectory.png         ``||W - I||_F``, max/mean ``|W_ij|`` (i != j), and the largest entries
spectrum_<e>.png            heatmap of log10 covariance eigenvalues over training, and snapshots
rankme_alpha.png            RankMe and alpha-ReQ per embedding over training
alignment.png               eigen-alignment (mean, weighted mean) and the normalised commutator
collapse_std.png            collapse std per embedding with the monitor's threshold
==========================  ======================================================================

Steps where a metric was computed on non-finite data (NaN in ``metrics.csv``) are marked with a
red tick on the x axis.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402

from solo_offdiag.analysis.writer import METRICS_CSV, load_npz, read_metrics_table  # noqa: E402
from solo_offdiag.io import atomic_open  # noqa: E402

__all__ = ["find_analysis_dir", "plot_run"]

_DPI = 130


#: a repro run folder's record of the solo-learn run directory it trained (``{"run_dir": ...}``).
_REPRO_MARKER = "pretrain.json"
#: how deep below the given folder :func:`find_analysis_dir` looks for ``analysis/`` folders.
_SEARCH_DEPTH = 5


def _holds_analysis(folder: Path) -> bool:
    """Whether ``folder`` has an analysis ``metrics.csv`` (first column ``step``; Lightning's
    CSV logger also writes a ``metrics.csv``, into the run folder, with other columns first)."""
    path = folder / METRICS_CSV
    if not path.is_file():
        return False
    with open(path, encoding="utf-8", newline="") as handle:
        header = handle.readline().strip().split(",")
    return header[0] == "step"


def _analysis_folders_below(root: Path) -> list[Path]:
    found = []
    for current, dirs, _ in os.walk(root):
        depth = len(Path(current).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < _SEARCH_DEPTH else []
        folder = Path(current)
        if folder.name == "analysis" and _holds_analysis(folder):
            found.append(folder)
    return found


def find_analysis_dir(path: str | Path) -> Path:
    """The analysis folder of ``path``: a run directory of ``solo-offdiag pretrain``, its
    ``analysis/`` folder, or a ``solo-offdiag repro`` run folder (found through its
    ``pretrain.json``, else by looking for the one ``analysis/`` folder below it).

    Raises:
        FileNotFoundError: ``path`` is not a folder, or holds no analysis data (message says where
            it looked), or holds several analysis folders (message lists them).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder")
    candidates = [path, path / "analysis"]
    marker = path / _REPRO_MARKER
    if marker.is_file():
        with contextlib.suppress(ValueError, KeyError, TypeError):  # damaged: search below
            candidates.append(path / json.loads(marker.read_text())["run_dir"] / "analysis")
    for candidate in candidates:
        if _holds_analysis(candidate):
            return candidate
    found = _analysis_folders_below(path)
    if len(found) == 1:
        return found[0]
    if found:
        listed = "\n  ".join(str(f) for f in found)
        raise FileNotFoundError(
            f"{path} holds {len(found)} analysis folders; pass one of them:\n  {listed}"
        )
    raise FileNotFoundError(
        f"no analysis data in {path}: no analysis {METRICS_CSV} (first column 'step') in it, in "
        f"{path / 'analysis'} or in an analysis/ folder up to {_SEARCH_DEPTH} levels below. Pass "
        "a run folder of solo-offdiag pretrain or repro, or its analysis/ folder (the analysis "
        "callbacks write <run dir>/analysis/metrics.csv)"
    )


class _Metrics(dict):
    """Columns of metrics.csv plus ``present``: per column, where the metric was computed."""

    present: dict[str, np.ndarray]


def _series(metrics: _Metrics, column: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Steps and values of ``column`` where it was computed (NaN = computed on bad data)."""
    if column not in metrics:
        return None
    computed = metrics.present[column]
    if not computed.any():
        return None
    return metrics["step"][computed], metrics[column][computed]


def _mark_nan(ax: plt.Axes, steps: np.ndarray, values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        label = "non-finite (NaN recorded)" not in ax.get_legend_handles_labels()[1]
        ax.plot(
            steps[bad],
            np.zeros(bad.sum()),
            "|",
            color="red",
            markersize=14,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label="non-finite (NaN recorded)" if label else None,
        )


def _embedding_names(metrics: _Metrics, prefix: str) -> list[str]:
    return sorted(k.split("/", 1)[1] for k in metrics if k.startswith(prefix + "/"))


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=_DPI)
    plt.close(fig)
    return path


def plot_head_trajectory(metrics: _Metrics, folder: Path, out: Path) -> Path | None:
    dist = _series(metrics, "head/dist_identity")
    if dist is None:
        return None
    traj_path = folder / "head_trajectory.npz"
    traj = load_npz(traj_path) if traj_path.is_file() else None
    n_panels = 3 if traj is not None and len(traj.get("steps", [])) > 1 else 2
    fig, axes = plt.subplots(1, n_panels, figsize=(5.2 * n_panels, 4))
    ax = axes[0]
    ax.plot(*dist, marker=".", label=r"$\|W - I\|_F$")
    off = _series(metrics, "head/offdiag_fro")
    if off is not None and not np.allclose(off[1], dist[1], equal_nan=True):
        ax.plot(*off, marker=".", linestyle="--", label=r"$\|\mathrm{offdiag}(W)\|_F$")
    _mark_nan(ax, *dist)
    ax.set(xlabel="training step", ylabel="Frobenius norm", title="distance of the head from I")
    ax.legend()
    ax = axes[1]
    for column, label in (
        ("head/offdiag_max_abs", r"max $|W_{ij}|$, $i \neq j$"),
        ("head/offdiag_mean_abs", r"mean $|W_{ij}|$, $i \neq j$"),
    ):
        series = _series(metrics, column)
        if series is not None:
            ax.plot(*series, marker=".", label=label)
    ax.set(xlabel="training step", ylabel=r"$|W_{ij}|$ (unitless)", title="off-diagonal entries")
    ax.legend()
    if n_panels == 3:
        ax = axes[2]
        steps, delta = traj["steps"], traj["delta"].astype(np.float64)
        d = delta.shape[1]
        off_mask = ~np.eye(d, dtype=bool)
        peak = np.nanmax(np.abs(delta), axis=0)
        peak[~off_mask] = -np.inf
        top = np.argsort(peak, axis=None)[::-1][: min(6, d * (d - 1))]
        for flat in top:
            i, j = divmod(int(flat), d)
            ax.plot(steps, delta[:, i, j], marker=".", label=f"$W_{{{i},{j}}}$")
        ax.axhline(0, color="gray", linewidth=0.8)
        ax.set(
            xlabel="training step",
            ylabel=r"$W_{ij}$ (off-diagonal entry)",
            title=f"largest off-diagonal entries ({len(steps)} snapshots)",
        )
        ax.legend(fontsize="small", ncol=2)
    return _save(fig, out / "head_trajectory.png")


def plot_spectrum(folder: Path, out: Path) -> list[Path]:
    path = folder / "spectrum.npz"
    if not path.is_file():
        return []
    data = load_npz(path)
    steps = data["steps"]
    written = []
    for key in sorted(k for k in data if k.startswith("eigvals/")):
        name = key.split("/", 1)[1]
        eig = data[key].astype(np.float64)
        if eig.size == 0:
            continue
        top = np.nanmax(eig) if np.isfinite(eig).any() else 1.0
        floor = top * 1e-12
        log_eig = np.log10(np.where(eig > floor, eig, np.nan))
        fig, (ax_map, ax_lines) = plt.subplots(1, 2, figsize=(11, 4.2))
        ranks = np.arange(1, eig.shape[1] + 1)
        edges = _edges(steps.astype(np.float64))
        cmap = plt.get_cmap("viridis").with_extremes(bad="lightgray")
        mesh = ax_map.pcolormesh(
            edges,
            np.arange(0.5, eig.shape[1] + 1),
            np.ma.masked_invalid(log_eig.T),
            cmap=cmap,
            shading="flat",
        )
        fig.colorbar(mesh, ax=ax_map, label=r"$\log_{10}$ eigenvalue of covariance $C$")
        ax_map.set(
            xlabel="training step",
            ylabel="eigenvalue rank $i$ (1 = largest)",
            title=f"spectrum of '{name}' over training (gray: ~0 or NaN)",
        )
        ax_map.invert_yaxis()
        picks = np.unique(np.linspace(0, len(steps) - 1, min(6, len(steps))).round().astype(int))
        norm = Normalize(vmin=steps.min(), vmax=max(steps.max(), steps.min() + 1))
        for index in picks:
            ax_lines.plot(
                ranks,
                eig[index],
                color=plt.get_cmap("plasma")(norm(steps[index]) * 0.9),
                label=f"step {steps[index]}",
            )
        ax_lines.set_xscale("log")
        ax_lines.set_yscale("log")
        ax_lines.set(
            xlabel="eigenvalue rank $i$",
            ylabel="eigenvalue $\\lambda_i$ of $C$ (squared embedding units)",
            title="spectrum snapshots (log-log)",
        )
        ax_lines.legend(fontsize="small")
        written.append(_save(fig, out / f"spectrum_{name}.png"))
    return written


def _edges(steps: np.ndarray) -> np.ndarray:
    if len(steps) == 1:
        return np.array([steps[0] - 0.5, steps[0] + 0.5])
    mids = (steps[1:] + steps[:-1]) / 2
    return np.concatenate([[2 * steps[0] - mids[0]], mids, [2 * steps[-1] - mids[-1]]])


def plot_rankme_alpha(metrics: _Metrics, out: Path) -> Path | None:
    names = sorted(
        set(_embedding_names(metrics, "rankme")) | set(_embedding_names(metrics, "alpha_req"))
    )
    if not names:
        return None
    fig, (ax_r, ax_a) = plt.subplots(1, 2, figsize=(11, 4))
    for name in names:
        for ax, column in ((ax_r, f"rankme/{name}"), (ax_a, f"alpha_req/{name}")):
            series = _series(metrics, column)
            if series is not None:
                ax.plot(*series, marker=".", label=f"'{name}'")
                _mark_nan(ax, *series)
    ax_r.set(xlabel="training step", ylabel="RankMe (effective rank, dimensions)", title="RankMe")
    ax_a.set(
        xlabel="training step",
        ylabel=r"$\alpha$ ($\lambda_i \propto i^{-\alpha}$)",
        title=r"$\alpha$-ReQ (eigenspectrum decay)",
    )
    ax_r.legend()
    ax_a.legend()
    return _save(fig, out / "rankme_alpha.png")


def plot_alignment(metrics: _Metrics, out: Path) -> Path | None:
    weighted = _series(metrics, "align/weighted_mean")
    if weighted is None:
        return None
    fig, (ax_a, ax_c) = plt.subplots(1, 2, figsize=(11, 4))
    ax_a.plot(*weighted, marker=".", label=r"eigenvalue-weighted mean $a_j$")
    mean = _series(metrics, "align/mean")
    if mean is not None:
        ax_a.plot(*mean, marker=".", linestyle="--", label="mean $a_j$")
    _mark_nan(ax_a, *weighted)
    ax_a.set(
        xlabel="training step",
        ylabel=r"$a_j = |u_j^\top W u_j| / \|W u_j\|$",
        title="alignment of W with the eigenvectors $u_j$ of F",
    )
    low = np.nanmin(weighted[1]) if np.isfinite(weighted[1]).any() else 0.0
    if mean is not None and np.isfinite(mean[1]).any():
        low = min(low, np.nanmin(mean[1]))
    ax_a.set_ylim(max(0.0, low - 0.1 * (1.0 - low) - 1e-3), 1.0 + 0.05 * (1.0 - low) + 1e-4)
    ax_a.axhline(1.0, color="gray", linewidth=0.8, linestyle=":")
    ax_a.legend()
    comm = _series(metrics, "align/commutator")
    if comm is not None:
        ax_c.plot(*comm, marker=".", color="C2")
        _mark_nan(ax_c, *comm)
    ax_c.set(
        xlabel="training step",
        ylabel=r"$\|WF - FW\|_F \,/\, (\|W\|_F \|F\|_F)$",
        title="normalised commutator (0 = W and F commute)",
    )
    return _save(fig, out / "alignment.png")


def plot_collapse(metrics: _Metrics, out: Path) -> Path | None:
    names = _embedding_names(metrics, "collapse_std")
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name in names:
        series = _series(metrics, f"collapse_std/{name}")
        if series is None:
            continue
        (line,) = ax.plot(*series, marker=".", label=f"collapse std '{name}'")
        _mark_nan(ax, *series)
        threshold = _series(metrics, f"collapse_threshold/{name}")
        if threshold is not None and np.isfinite(threshold[1]).any():
            ax.axhline(
                np.nanmean(threshold[1]),
                color=line.get_color(),
                linestyle=":",
                label=f"warning threshold '{name}'",
            )
    ax.set(
        xlabel="training step",
        ylabel=r"mean$_j$ std$_i(z_{ij}/\|z_i\|)$",
        title=r"collapse std (healthy $\approx 1/\sqrt{d}$, collapsed = 0)",
    )
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")
    return _save(fig, out / "collapse_std.png")


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Draw every figure the data in ``run_dir`` supports; returns the PNG paths written.

    Args:
        run_dir: a run folder, its ``analysis`` folder, or a repro run folder (see
            :func:`find_analysis_dir`).
        out_dir: where the PNGs go; default ``<analysis folder>/figures``.
    """
    folder = find_analysis_dir(run_dir)
    out = Path(out_dir) if out_dir is not None else folder / "figures"
    out.mkdir(parents=True, exist_ok=True)
    values, present = read_metrics_table(folder / METRICS_CSV)
    metrics = _Metrics(values)
    metrics.present = present
    written: list[Path | None] = [plot_head_trajectory(metrics, folder, out)]
    written += plot_spectrum(folder, out)
    written += [
        plot_rankme_alpha(metrics, out),
        plot_alignment(metrics, out),
        plot_collapse(metrics, out),
    ]
    return [p for p in written if p is not None]

"""Plot the head study's trajectories (docs/image_study.md): RankMe(z), collapse_std(z) and
||W - I||_F over training, one line per run of ``<out>/results.jsonl``.

    .venv/bin/python artifact/image_study_plot.py runs/study docs/figures/image_study.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from solo_offdiag.analysis.writer import read_metrics_csv

    out_dir, figure = Path(sys.argv[1]), Path(sys.argv[2])
    rows = [json.loads(line) for line in (out_dir / "results.jsonl").read_text().splitlines() if line.strip()]
    panels = [("rankme/z", "RankMe(z) (of 64)"), ("collapse_std/z", "collapse_std(z) (healthy ~0.125)"),
              ("head/offdiag_fro", "||W - I||_F")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for row in rows:
        metrics = read_metrics_csv(Path(row["run_dir"]) / "analysis" / "metrics.csv")
        for ax, (col, _title) in zip(axes, panels):
            if col in metrics:
                ok = metrics[col] == metrics[col]
                ax.plot(metrics["step"][ok], metrics[col][ok], marker=".",
                        label=f"{row['variant']} {row['head']} s{row['seed']}")
    for ax, (_, title) in zip(axes, panels):
        ax.set_title(title)
        ax.set_xlabel("step")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110)
    print(figure)


if __name__ == "__main__":
    main()

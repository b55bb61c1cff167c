"""Plot the head study's trajectories (docs/image_study.md): RankMe(z), collapse_std(z) and
||W - I||_F over training, one line per run of ``<out>/results.jsonl``: one colour per variant,
one line style per head, the seeds of a (variant, head) in the same style (one legend entry).

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
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    heads = list(dict.fromkeys(row["head"] for row in rows))
    colours = {v: f"C{i % 10}" for i, v in enumerate(variants)}
    styles = {h: ("-", "--", ":", "-.")[i % 4] for i, h in enumerate(heads)}
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    labelled: set[tuple[str, str]] = set()
    for row in rows:
        metrics = read_metrics_csv(Path(row["run_dir"]) / "analysis" / "metrics.csv")
        key = (row["variant"], row["head"])
        seeds = sorted({r["seed"] for r in rows if (r["variant"], r["head"]) == key})
        label = None if key in labelled else f"{key[0]} {key[1]} (seeds {', '.join(map(str, seeds))})"
        labelled.add(key)
        for ax, (col, _title) in zip(axes, panels):
            if col in metrics:
                ok = metrics[col] == metrics[col]
                ax.plot(metrics["step"][ok], metrics[col][ok], color=colours[key[0]], linestyle=styles[key[1]],
                        marker=".", markersize=3, linewidth=1.2, label=label)
    for ax, (_, title) in zip(axes, panels):
        ax.set_title(title)
        ax.set_xlabel("step")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110, bbox_inches="tight")
    print(figure)


if __name__ == "__main__":
    main()

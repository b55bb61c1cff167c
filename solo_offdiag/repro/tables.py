"""Tables of a preset's results in three formats: Markdown, LaTeX (booktabs) and CSV.

* ``c1_c2``: the image table (claims C1, C2): per dataset, method and head, the offline linear
  probe and kNN top-1 (mean +- std over seeds), the final RankMe of z, and the seed count;
* ``claims``: the verdict of every claim check (``repro check``);
* ``theory``: per theory experiment, its criteria and wall time.

Examples:
    >>> t = Table("demo", ["a", "b"], [["x", 1.5]])
    >>> print(t.markdown())
    | a | b |
    |---|---|
    | x | 1.5 |
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solo_offdiag.claim_registry import Status, verdict_text
from solo_offdiag.io import atomic_write_text

__all__ = ["FORMATS", "HEAD_ORDER", "Table", "c1_c2_table", "claims_table", "head_rank", "image_runs_table", "run_order",
           "theory_table", "write_tables"]

FORMATS = ("md", "tex", "csv")
#: the order of the heads in tables and figure legends (the paper's arms first); a registered head
#: not listed comes last, by name.
HEAD_ORDER = ("mlp", "linear", "offdiag", "diagonal", "identity", "directpred", "directcopy")


def head_rank(head: str) -> int:
    """A head's place in :data:`HEAD_ORDER` (unlisted heads after the listed ones)."""
    return HEAD_ORDER.index(head) if head in HEAD_ORDER else len(HEAD_ORDER)


def run_order(r: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key of an image-run record: dataset, method, head (:func:`head_rank`, then name), seed."""
    return (r["dataset"], r.get("method", ""), head_rank(r["head"]), r["head"], r["seed"])


@dataclass
class Table:
    name: str
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""

    @staticmethod
    def _cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    def markdown(self) -> str:
        lines = ["| " + " | ".join(c.replace("|", "\\|") for c in self.columns) + " |", "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(self._cell(v).replace("|", "\\|") for v in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def latex(self) -> str:
        def esc(text: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                         ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                         ("^", r"\textasciicircum{}"), ("±", r"$\pm$")):
                text = text.replace(a, b)
            return text

        body = [" & ".join(esc(self._cell(v)) for v in row) + r" \\" for row in self.rows]
        return "\n".join([
            r"\begin{table}[t]", r"\centering",
            *( [rf"\caption{{{esc(self.caption)}}}"] if self.caption else []),
            rf"\label{{tab:{self.name}}}",
            r"\begin{tabular}{" + "l" * len(self.columns) + "}", r"\toprule",
            " & ".join(esc(c) for c in self.columns) + r" \\", r"\midrule", *body,
            r"\bottomrule", r"\end{tabular}", r"\end{table}",
        ])

    def csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else v for v in row])
        return buf.getvalue()

    def write(self, folder: Path) -> list[Path]:
        paths = []
        for fmt, text in (("md", self.markdown() + "\n"), ("tex", self.latex() + "\n"), ("csv", self.csv())):
            paths.append(atomic_write_text(Path(folder) / f"{self.name}.{fmt}", text))
        return paths


def _mean_std(values: Sequence[float | None]) -> tuple[float, float, int]:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return math.nan, math.nan, 0
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, len(vals)


def _pm(mean: float, std: float, n: int) -> str:
    if n == 0:
        return ""
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def c1_c2_table(records: Sequence[dict[str, Any]]) -> Table:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["dataset"], r.get("method", "byol_offdiag"), r["head"]), []).append(r)

    rows = []
    for key in sorted(groups, key=lambda k: (k[0], k[1], head_rank(k[2]), k[2])):
        rs = groups[key]
        probe, knn, rank = (_mean_std([r.get(k) for r in rs]) for k in ("probe_acc1", "knn_acc1", "rankme_z"))
        rows.append([*key, _pm(*probe), _pm(*knn), _pm(*rank), probe[2]])
    return Table("c1_c2", ["dataset", "method", "head", "linear probe top-1 (%)", "kNN top-1 (%)",
                           "RankMe(z)", "seeds"], rows,
                 caption="Offline linear probe and kNN (k=20) on frozen backbone features, mean ± std "
                         "over seeds; RankMe of the projector output at the end of training.")


def image_runs_table(records: Sequence[dict[str, Any]]) -> Table:
    """One row per finished image run: the per-seed values behind ``c1_c2`` and the C3 statistics
    (peak/final and peak position of ``||offdiag(W)||_F``, :func:`head_offdiag_summary`)."""
    from solo_offdiag.repro.experiments import peak_over_final

    rows = []
    for r in sorted(records, key=run_order):
        off = r.get("head_offdiag")
        off = off if off and off["peak"] > 0 else None  # no off-diagonal (identity, diagonal): empty cells
        rows.append([r["dataset"], r.get("method", "byol_offdiag"), r["head"], r["seed"], r.get("probe_acc1"),
                     r.get("knn_acc1"), r.get("rankme_z"), r.get("rankme_feats"), r.get("collapse_std_z"),
                     peak_over_final(off) if off else None, off["peak_position"] if off else None])
    return Table("image_runs", ["dataset", "method", "head", "seed", "linear probe top-1 (%)", "kNN top-1 (%)",
                                "RankMe(z)", "RankMe(features)", "collapse std(z)", "head peak/final",
                                "head peak position"], rows,
                 caption="Every image run: offline probe and kNN, RankMe of the projector output z and of "
                         "the backbone features, the per-dimension std of the l2-normalised z (collapse: "
                         "-> 0; healthy: 1/sqrt(dim)), and the peak/final ratio and relative peak position "
                         "of ||offdiag(W)||_F (C3).")


def claims_table(report: Any) -> Table:
    rows = []
    for v in report.verdicts:
        for c in v.checks:
            rows.append([v.claim, c.label, c.status, v.status, c.detail])
    return Table("claims", ["claim", "check", "check status", "claim status", "detail"], rows,
                 caption=f"Claim checks, preset {report.preset}.")


def _verdict(crit: dict[str, Any]) -> str:
    """A criterion of a theory ``summary.json`` as shown (:func:`verdict_text`). Summaries written
    before the criteria returned :class:`Outcome` carry ``passed`` instead of ``status``."""
    status = crit["status"] if "status" in crit else Status.of(bool(crit.get("passed")))
    return verdict_text(status, negative_control=bool(crit.get("negative_control")))


def theory_table(summaries: dict[str, dict[str, Any] | None]) -> Table:
    rows = []
    for name, s in summaries.items():
        if s is None:
            rows.append([name, "", "not run", "", None, "", None])
            continue
        for key, crit in (s.get("criteria") or {}).items():
            m = crit.get("measured", {})
            seeds = f"{m['passes']}/{m['n']}" if "passes" in m else ""
            rows.append([name, key, _verdict(crit), seeds, m.get("wilson_lower_95"), crit.get("detail", ""),
                         s.get("wall_time_s")])
    return Table("theory", ["experiment", "criterion", "status", "seeds passing", "Wilson 95% lower",
                            "detail", "wall time (s)"], rows,
                 caption="Theory experiments: criteria as evaluated by each experiment (per-seed tests, k of n; "
                         "Wilson: 95% lower bound of the per-seed pass rate).")


def write_tables(preset_dir: Path, report: Any | None = None) -> list[Path]:
    """Write every table of the preset into ``<preset_dir>/tables``; returns the paths."""
    from solo_offdiag.repro.check import image_records, theory_summary
    from solo_offdiag.repro.experiments import theory_experiments

    folder = preset_dir / "tables"
    records = image_records(preset_dir)
    paths = c1_c2_table(records).write(folder) + image_runs_table(records).write(folder)
    paths += theory_table({n: theory_summary(preset_dir, n) for n in theory_experiments()}).write(folder)
    if report is not None:
        paths += claims_table(report).write(folder)
    return paths

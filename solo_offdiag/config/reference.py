"""Render the reference of every config key we add, from the dataclasses that define them.

``python -m solo_offdiag.config.reference`` prints the Markdown table that the README embeds
between the ``<!-- config-reference -->`` markers; a test fails when the README is out of date.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from solo_offdiag.config.schema import OffDiagMethodConfig
from solo_offdiag.config.validate import describe_type
from solo_offdiag.heads import list_heads

__all__ = ["render_reference"]

#: Hand-written meaning of each key (the default and type come from the dataclasses).
DESCRIPTIONS: dict[str, str] = {
    "proj_hidden_dim": "solo-learn's projector hidden width",
    "proj_output_dim": "projector output width d; every head is d x d",
    "pred_hidden_dim": "hidden width of the `mlp` head (solo's BYOL reads it even when unused)",
    "predictor.kind": "head kind, one of "
    + ", ".join(f"`{kind}`" for kind in list_heads())
    + " (`solo-offdiag heads`)",
    "predictor.options": "options of that kind, e.g. `{init: random}` for `linear`, `{rho: 0.3, eps: 0.01, freq: 1}` for `directpred`",
    "predictor.lr": "head param-group learning rate, **absolute** (not scaled by batch size, unlike `optimizer.lr`); follows the scheduler; null = the global lr",
    "predictor.weight_decay": "head param-group weight decay; null = `optimizer.weight_decay`",
    "predictor.weight_decay_kinds": "the head kinds that get `predictor.weight_decay` (others keep "
    "`optimizer.weight_decay`), e.g. `[offdiag, diagonal]`; null = every kind",
    "predictor.weight_decay_start": "fraction of the training steps before which the head group "
    "has no weight decay (then its weight decay); 0 = from the first step",
    "predictor.static_lr": "keep the head at the global lr with no schedule (solo's `static_lr`)",
    "predictor.output_norm": "`batch`: every coordinate of the prediction p and of the target z "
    "standardised over the batch (BN without affine) before the loss, as in the theory; `none`: "
    "solo's loss as is (byol_offdiag only; simsiam_offdiag's projector already ends in such a BN)",
    "predictor.lars.trust_ratio": "LARS only: false = the head group takes plain SGD+momentum steps "
    "at its lr (no `eta * ||A||` bound, which keeps a zero-initialised head tiny; docs/image_study.md)",
    "predictor.lars.eta": "LARS only: trust coefficient of the head group; null = `optimizer.kwargs.eta`",
    "predictor.lars.clip_lr": "LARS only: `clip_lr` of the head group; null = `optimizer.kwargs.clip_lr`",
    "analysis.enabled": "attach the analysis callbacks",
    "analysis.every_n_steps": "compute and log analysis metrics every N global steps",
    "analysis.queue_size": "bounded queue of embeddings for the spectrum metrics",
    "analysis.embeddings": "which embeddings: `z` (projector output), `feats` (backbone)",
    "analysis.source": "spectrum embeddings from validation (`val`), held-out train batches (`train`) or `auto`",
    "analysis.head_dynamics": "log head statistics and keep the head trajectory",
    "analysis.spectrum": "RankMe, alpha-ReQ and the singular spectrum",
    "analysis.alignment": "eigen-alignment of the head with the feature correlation",
    "analysis.background": "compute the metrics in one background thread (`true`), on the training thread (`false`) or `auto` (background on CUDA, inline on CPU); callbacks that may stop training always compute inline",
    "analysis.collapse.enabled": "collapse monitor on the collapse std",
    "analysis.collapse.threshold": "absolute threshold; null = relative_threshold / sqrt(d)",
    "analysis.collapse.relative_threshold": "threshold relative to the healthy 1/sqrt(d)",
    "analysis.collapse.patience": "consecutive checks under the threshold before warning",
    "analysis.collapse.stop": "stop training when collapse is detected",
    "analysis.trajectory_every": "keep every n-th logged head matrix in head_trajectory.npz",
    "analysis.stop_on_nan": "stop training on NaN/Inf embeddings (default: warn, record NaN, go on)",
    "analysis.out_dir": "output folder; null = `<run dir>/analysis`",
    "analysis.alpha_fit_range": "alpha-ReQ fit range, fractions of the spectrum",
    "analysis.alpha_method": "alpha-ReQ fit: `bulk` (least squares over alpha_fit_range) or `agrawal` (the authors' 1/i-weighted fit over ranks 6-100)",
    "analysis.seed": "seed of the held-out train-batch sampling",
}


def _rows(cls: type, prefix: str) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    hints = typing.get_type_hints(cls)
    instance = cls()
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        tp = hints[field.name]
        value: Any = getattr(instance, field.name)
        if dataclasses.is_dataclass(tp):
            rows += _rows(tp, key + ".")
            continue
        default = _yaml_literal(value)
        rows.append((key, f"`{default}`", describe_type(tp)))
    return rows


def _yaml_literal(value: Any) -> str:
    """A default as it is written in a YAML config."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_yaml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_literal(v)}" for k, v in value.items()) + "}"
    return str(value)


def undocumented_keys() -> list[str]:
    """Keys with no entry in :data:`DESCRIPTIONS` (a test keeps this empty)."""
    return [key for key, _, _ in _rows(OffDiagMethodConfig, "") if key not in DESCRIPTIONS]


def render_reference() -> str:
    """A Markdown table: key under ``method_kwargs``, default, type, meaning."""
    lines = ["| key (under `method_kwargs`) | default | type | meaning |", "|---|---|---|---|"]
    for key, default, tp in _rows(OffDiagMethodConfig, ""):
        lines.append(f"| `{key}` | {default} | {tp} | {DESCRIPTIONS.get(key, '')} |")
    return "\n".join(lines)


BEGIN, END = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"


def update_readme(path: str) -> bool:
    """Replace the table between the markers in ``path``; return whether the file changed."""
    from pathlib import Path

    from solo_offdiag.io import atomic_write_text

    text = Path(path).read_text(encoding="utf-8")
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = text[:start] + "\n" + render_reference() + "\n" + text[stop:]
    if new != text:
        atomic_write_text(path, new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m solo_offdiag.config.reference",
        description="Print the Markdown reference of our config keys, or update it in a README.",
    )
    parser.add_argument("--update", metavar="README", help="rewrite the table between the markers")
    args = parser.parse_args(argv)
    if args.update:
        changed = update_readme(args.update)
        print(f"{args.update}: {'updated' if changed else 'already up to date'}")
    else:
        print(render_reference())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

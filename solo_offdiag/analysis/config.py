"""Configuration of the analysis callbacks (``method_kwargs.analysis``): every default lives here.

Plain dataclasses with no import from :mod:`solo_offdiag.config` (which composes this one into the
method schema): ``solo_offdiag.config.validate.from_mapping`` reads each field's
``metadata={"check": predicate, "allowed": description}``; the predicates are defined here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["AnalysisConfig", "CollapseConfig"]

EmbeddingName = Literal["z", "feats"]


def positive(value: Any) -> bool:
    return value > 0


def non_negative(value: Any) -> bool:
    return value >= 0


@dataclass(frozen=True)
class CollapseConfig:
    """Collapse monitor: warn when ``collapse_std`` stays under a threshold.

    ``threshold=None`` means ``relative_threshold / sqrt(d)``: a healthy embedding has a collapse
    std of about ``1/sqrt(d)`` (Chen & He, SimSiam, CVPR 2021), complete collapse gives 0.
    """

    enabled: bool = True
    threshold: float | None = field(
        default=None, metadata={"check": positive, "allowed": "a positive number or null"}
    )
    relative_threshold: float = field(
        default=0.1, metadata={"check": positive, "allowed": "a positive number"}
    )
    patience: int = field(
        default=3, metadata={"check": positive, "allowed": "a positive integer (checks in a row)"}
    )
    stop: bool = False


@dataclass(frozen=True)
class AnalysisConfig:
    """Which analysis callbacks run and how often (``method_kwargs.analysis``)."""

    enabled: bool = True
    every_n_steps: int = field(
        default=50, metadata={"check": positive, "allowed": "a positive integer (global steps)"}
    )
    queue_size: int = field(
        default=2048, metadata={"check": positive, "allowed": "a positive integer (samples)"}
    )
    embeddings: tuple[EmbeddingName, ...] = ("z", "feats")
    #: where spectrum embeddings come from: validation batches, a held-out slice of training
    #: batches, or "auto" (validation when the trainer has a validation loader).
    source: Literal["auto", "val", "train"] = "auto"
    head_dynamics: bool = True
    spectrum: bool = True
    alignment: bool = True
    collapse: CollapseConfig = field(default_factory=CollapseConfig)
    #: keep every n-th logged head matrix in head_trajectory.npz (bounds its size).
    trajectory_every: int = field(
        default=1, metadata={"check": positive, "allowed": "a positive integer"}
    )
    stop_on_nan: bool = False
    #: output folder; null = ``<trainer.log_dir or default_root_dir>/analysis``.
    out_dir: str | None = None
    #: alpha-ReQ fit range as fractions of the spectrum (the "bulk").
    alpha_fit_range: tuple[float, ...] = field(
        default=(0.05, 0.8),
        metadata={
            "check": lambda r: len(r) == 2 and 0 <= r[0] < r[1] <= 1,
            "allowed": "two fractions [lo, hi] with 0 <= lo < hi <= 1",
        },
    )
    #: alpha-ReQ fit: "bulk" (least squares over alpha_fit_range) or "agrawal" (the authors'
    #: 1/i-weighted fit over ranks 6-100, for comparison with published values).
    alpha_method: Literal["bulk", "agrawal"] = "bulk"
    seed: int = field(default=0, metadata={"check": non_negative, "allowed": "an integer >= 0"})
    #: compute the metrics in one background worker thread (true), on the training thread
    #: (false), or "auto": in the background when training runs on CUDA, inline on the CPU (where
    #: a worker competes with training for the same cores). Callbacks that may stop training
    #: (stop_on_nan, collapse.stop) always compute inline, so the stop happens at its step.
    background: bool | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        if not (self.background is True or self.background is False or self.background == "auto"):
            raise ValueError(f"background: got {self.background!r}; allowed: 'auto', true or false")

"""Which analysis callbacks exist and how ``method_kwargs.analysis`` builds them.

Adding a metric: write one module in this package (a subclass of
:class:`~solo_offdiag.analysis.callbacks.base.AnalysisCallback` and a ``from_config``), add one
:class:`Registration` to :data:`REGISTRY` (with its config switch) and document its columns in
docs/analysis.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lightning.pytorch import Callback

from solo_offdiag.analysis.callbacks import alignment, collapse, head_dynamics, spectrum
from solo_offdiag.analysis.config import AnalysisConfig

__all__ = ["REGISTRY", "Registration", "build_callbacks"]

log = logging.getLogger("solo_offdiag.analysis.callbacks")


@dataclass(frozen=True)
class Registration:
    """One analysis callback: its name, its config switch, its builder."""

    #: what the callback measures (in log messages).
    name: str
    #: whether ``method_kwargs.analysis`` turns it on.
    enabled: Callable[[AnalysisConfig], bool]
    #: ``build(cfg, common)``; ``common`` holds the keys every callback takes.
    build: Callable[[AnalysisConfig, dict[str, Any]], Callback]
    #: whether it reads the head matrix ``W`` (left out for a nonlinear head).
    needs_linear_head: bool = False


#: In the order the callbacks run (and write their columns).
REGISTRY: tuple[Registration, ...] = (
    Registration("head dynamics", lambda c: c.head_dynamics, head_dynamics.from_config, True),
    Registration("spectrum", lambda c: c.spectrum, spectrum.from_config),
    Registration("collapse monitor", lambda c: c.collapse.enabled, collapse.from_config),
    Registration("eigen alignment", lambda c: c.alignment, alignment.from_config, True),
)


def build_callbacks(
    cfg: AnalysisConfig, *, head_is_linear: bool, out_dir: str | None = None
) -> list[Callback]:
    """The analysis callbacks selected by ``cfg`` (``[]`` when ``cfg.enabled`` is false).

    Args:
        cfg: the validated ``method_kwargs.analysis`` section.
        head_is_linear: whether the module's ``prediction_head.matrix()`` is a matrix; the
            callbacks that read ``W`` (head dynamics, eigen alignment) are left out (with an info
            log) if not.
        out_dir: output folder; ``None`` = ``cfg.out_dir``, else
            ``<trainer.log_dir or default_root_dir>/analysis``.

    Examples:
        >>> [type(c).__name__ for c in build_callbacks(AnalysisConfig(), head_is_linear=True)]
        ['HeadDynamicsCallback', 'EmbeddingSpectrumCallback', 'CollapseMonitorCallback', 'EigenAlignmentCallback']
    """
    if not cfg.enabled:
        return []
    common = {
        "every_n_steps": cfg.every_n_steps,
        "out_dir": out_dir if out_dir is not None else cfg.out_dir,
        "stop_on_nan": cfg.stop_on_nan,
        "background": cfg.background,
    }
    callbacks: list[Callback] = []
    skipped = []
    for entry in REGISTRY:
        if not entry.enabled(cfg):
            continue
        if entry.needs_linear_head and not head_is_linear:
            skipped.append(entry.name)
            continue
        callbacks.append(entry.build(cfg, common))
    if skipped:
        log.info("analysis: the prediction head is nonlinear; %s skipped", " and ".join(skipped))
    return callbacks

"""The small protocol a LightningModule satisfies to get the analysis callbacks (torch only).

Any ``LightningModule`` works with :mod:`solo_offdiag.analysis.callbacks`, not only our solo-learn
methods, when it follows these three rules:

1. **The head.** It exposes ``prediction_head``: a module whose ``matrix()`` returns the
   effective ``d x d`` matrix ``W`` of a linear head (``p = z @ W.T``), or ``None`` for a nonlinear
   head (every :class:`solo_offdiag.heads.PredictionHead` does this). The head-dynamics and
   eigen-alignment callbacks need a linear head: attached to a module without ``prediction_head``,
   or whose ``matrix()`` is ``None``, they raise :class:`AnalysisProtocolError` at ``setup``,
   naming what is missing. :func:`~solo_offdiag.analysis.callbacks.build_callbacks` simply leaves
   them out for nonlinear heads.
2. **Training embeddings.** ``training_step`` returns a dict with ``"loss"`` and, when available,
   ``"z"`` (``[N, d]``, the online projector output of the first large view, detached) and
   ``"feats"`` (``[N, F]``, the backbone features of the same view, detached). The callbacks read
   them from ``outputs`` in ``on_train_batch_end``; a step returning a bare loss tensor is fine,
   the embedding metrics are then skipped with one warning.
3. **Validation embeddings (optional).** ``validation_step`` may return a dict containing
   ``"z"``/``"feats"`` likewise. With ``source="val"`` (or ``"auto"`` and a validation loader) the
   spectrum is computed on those; otherwise on a slice of training batches.

Examples:
    A minimal conforming module (see :class:`solo_offdiag.analysis.toy.ToySimSiam` for a full one)::

        class MyModule(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.backbone, self.projector = ..., ...
                self.prediction_head = OffDiagonalHead(256)

            def training_step(self, batch, batch_idx):
                feats = self.backbone(batch[0]); z = self.projector(feats)
                loss = ...
                return {"loss": loss, "z": z.detach(), "feats": feats.detach()}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch

from solo_offdiag.heads import list_heads

__all__ = [
    "EMBEDDING_KEYS",
    "AnalysisModule",
    "AnalysisProtocolError",
    "LinearHeadLike",
    "embeddings_from",
    "head_matrix",
]

#: Keys of ``training_step``/``validation_step`` outputs the callbacks read.
EMBEDDING_KEYS: tuple[str, ...] = ("z", "feats")


class AnalysisProtocolError(TypeError):
    """A module does not satisfy the analysis protocol; the message names what is missing."""


@runtime_checkable
class LinearHeadLike(Protocol):
    """A prediction head: ``matrix()`` is ``W`` (``p = z @ W.T``) or ``None`` when nonlinear."""

    def matrix(self) -> torch.Tensor | None: ...


@runtime_checkable
class AnalysisModule(Protocol):
    """What the analysis callbacks need from a LightningModule (see the module docstring)."""

    prediction_head: LinearHeadLike

    def training_step(self, *args: Any, **kwargs: Any) -> Mapping[str, Any]: ...


def head_matrix(module: Any, *, who: str) -> torch.Tensor:
    """The current head matrix ``W`` of ``module``, detached.

    Raises:
        AnalysisProtocolError: ``module`` has no ``prediction_head``, the head has no ``matrix()``,
            ``matrix()`` is ``None`` (nonlinear head) or not a square matrix. ``who`` (the
            callback's name) starts the message.
    """
    name = type(module).__name__
    hint = "see solo_offdiag.analysis.protocol"
    head = getattr(module, "prediction_head", None)
    if head is None:
        raise AnalysisProtocolError(
            f"{who} needs a linear prediction head, but {name} has no attribute "
            f"`prediction_head` (a module with matrix() -> Tensor | None; {hint})"
        )
    matrix = getattr(head, "matrix", None)
    if not callable(matrix):
        raise AnalysisProtocolError(
            f"{who} needs a linear prediction head, but {name}.prediction_head "
            f"({type(head).__name__}) has no method `matrix()` ({hint})"
        )
    weight = matrix()
    if weight is None:
        raise AnalysisProtocolError(
            f"{who} needs a linear prediction head, but {name}.prediction_head "
            f"({type(head).__name__}) is nonlinear: its matrix() returned None. Use a linear head "
            f"kind ({', '.join(list_heads(linear=True))}) or disable this callback "
            "(analysis.head_dynamics / analysis.alignment: false)"
        )
    if (
        not isinstance(weight, torch.Tensor)
        or weight.ndim != 2
        or weight.shape[0] != weight.shape[1]
    ):
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise AnalysisProtocolError(
            f"{who}: {name}.prediction_head.matrix() must return a square [d, d] tensor, got {shape}"
        )
    return weight.detach()


def embeddings_from(outputs: Any, key: str) -> torch.Tensor | None:
    """``outputs[key]`` as a detached ``[N, D]`` tensor, or ``None`` when absent.

    ``outputs`` is what ``training_step``/``validation_step`` returned; anything but a mapping
    (a bare loss tensor, ``None``) holds no embeddings. Extra dimensions are flattened.
    """
    if not isinstance(outputs, Mapping):
        return None
    value = outputs.get(key)
    if not isinstance(value, torch.Tensor) or value.ndim < 2:
        return None
    value = value.detach()
    return value.flatten(1) if value.ndim > 2 else value

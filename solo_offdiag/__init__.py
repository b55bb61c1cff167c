"""solo-offdiag: off-diagonal linear prediction heads for non-contrastive SSL.

Reference implementation of Wen & Li, "The Mechanism of Prediction Head in Non-contrastive
Self-supervised Learning", NeurIPS 2022 (arXiv:2205.06226), as a plugin for solo-learn.

Layering (nothing imports upward):

* ``solo_offdiag.heads``, ``solo_offdiag.analysis.metrics``, ``solo_offdiag.theory``: torch only;
* ``solo_offdiag.analysis.callbacks``: Lightning callbacks on top of the metrics;
* ``solo_offdiag.solo_adapter``: the only code that imports ``solo`` (lazily, with a clear error);
* ``solo_offdiag.cli`` and ``solo_offdiag.repro``: entry points and the reproduction package.

``import solo_offdiag`` never imports solo-learn.
"""

from solo_offdiag.heads import build_head, list_heads

__version__ = "0.1.0"

__all__ = ["__version__", "build_head", "list_heads"]

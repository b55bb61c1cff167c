"""Lightning callbacks that watch dimensional collapse and the prediction head while training.

They work with any ``LightningModule`` that follows :mod:`solo_offdiag.analysis.protocol`
(``prediction_head``; ``training_step`` returning ``{"loss", "z", "feats"}``). Our solo-learn
methods attach them through ``configure_callbacks()`` with :func:`build_callbacks`.

=========================  ==================================================  ==================
callback                   logs (``metrics.csv`` columns)                      data file
=========================  ==================================================  ==================
HeadDynamicsCallback       ``head/dist_identity``, ``head/offdiag_fro``, ...   head_trajectory.npz
EmbeddingSpectrumCallback  ``rankme/<e>``, ``alpha_req/<e>``, ``n_samples/<e>``  spectrum.npz
CollapseMonitorCallback    ``collapse_std/<e>``, ``collapse_threshold/<e>``     -
EigenAlignmentCallback     ``align/mean``, ``align/weighted_mean``,             alignment.npz
                           ``align/commutator``
=========================  ==================================================  ==================

``<e>`` is an embedding name, ``z`` (projector output) or ``feats`` (backbone features).

Package layout: one module per callback (``head_dynamics``, ``spectrum``, ``collapse``,
``alignment``), their base class and shared helpers in ``base``, the step-keyed state (record,
resume truncation, npz export) in ``state``, and :data:`~.registry.REGISTRY`, from which
:func:`build_callbacks` builds what ``method_kwargs.analysis`` selects. Adding a metric is one
module, one registry entry and its documentation (docs/analysis.md).

Design (after Lightning's own ``LearningRateMonitor``/``EarlyStopping``): configuration in
``__init__``, work in hooks, everything that must survive a resume in ``state_dict``.

* Hot path: per training step a callback at most copies the detached embeddings into a
  preallocated device ring buffer (spectrum) or adds ``z^T z`` into a device accumulator
  (alignment). No host transfer, ``.item()`` or file write happens between logging points.
* Logging points: the training thread gathers the buffers from every rank (every rank takes part
  in the collectives, in the same order), takes device-side snapshots of what the computation
  reads (on an accelerator it also launches the ``O(N d^2)`` Gram products there, without host
  synchronisation) and hands the rest to the run's
  :class:`~solo_offdiag.analysis.executor.AnalysisExecutor`: on global rank 0 one worker thread
  moves the ``d x d`` matrices to the CPU, solves the eigenproblems in float64 and returns plain
  values; rows, loggers, warnings and npz arrays are applied on the training thread, in
  submission order, at the next hook (non-blocking) and at the latest before a checkpoint's state
  is taken, at the end of training and on an exception. ``background="auto"`` (the default)
  uses the worker when the run trains on CUDA and computes inline on the CPU (where a worker
  would compete with training for the same cores); a callback that may stop training
  (``stop_on_nan``, ``CollapseMonitorCallback(stop=True)``) always computes inline, so the stop
  happens at the step it names.
* DDP: only rank 0 computes, logs and writes files.
* Output: values go to every active Lightning logger (``logger.log_metrics``, as
  ``LearningRateMonitor`` does, so CSV, TensorBoard and W&B all work) at ``step=global_step``, and
  to ``<run dir>/analysis/`` through one shared :class:`~solo_offdiag.analysis.writer.AnalysisWriter`.
* Resume: each callback's rows are part of its checkpointed state; on resume rows after the
  checkpoint's step are dropped and the files rewritten, so no step is duplicated or lost.
"""

from solo_offdiag.analysis.callbacks.alignment import EigenAlignmentCallback
from solo_offdiag.analysis.callbacks.base import AnalysisCallback, AnalysisWarning, resolve_out_dir
from solo_offdiag.analysis.callbacks.collapse import CollapseMonitorCallback
from solo_offdiag.analysis.callbacks.head_dynamics import HeadDynamicsCallback
from solo_offdiag.analysis.callbacks.registry import REGISTRY, Registration, build_callbacks
from solo_offdiag.analysis.callbacks.spectrum import EmbeddingSpectrumCallback
from solo_offdiag.analysis.callbacks.state import StepSeries
from solo_offdiag.analysis.executor import AnalysisWorkerError
from solo_offdiag.analysis.protocol import AnalysisProtocolError

__all__ = [
    "REGISTRY",
    "AnalysisCallback",
    "AnalysisProtocolError",
    "AnalysisWarning",
    "AnalysisWorkerError",
    "CollapseMonitorCallback",
    "EigenAlignmentCallback",
    "EmbeddingSpectrumCallback",
    "HeadDynamicsCallback",
    "Registration",
    "StepSeries",
    "build_callbacks",
    "resolve_out_dir",
]

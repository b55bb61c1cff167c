"""What ``byol_offdiag`` and ``simsiam_offdiag`` add to solo-learn's BYOL / SimSiam (solo-free).

:class:`OffDiagHeadMixin` goes *before* the solo class in the bases, so its methods wrap solo's:

* the head: solo builds its MLP predictor, then :meth:`_install_head` replaces it by
  ``build_head(kind, proj_output_dim, **options)``. Backbone and projector are created before
  the predictor, so their initialisation is identical to solo's method for the same seed;
* the optimiser: :attr:`learnable_params` puts the head's trainable parameters in a group
  ``"predictor"`` with ``predictor.lr`` / ``predictor.weight_decay`` / ``predictor.static_lr`` and the group's LARS
  settings ``predictor.lars`` (trust ratio, eta, clip_lr); ``predictor.weight_decay_start`` keeps
  that group's decay at 0 for the first fraction of the training steps;
* the analysis protocol: ``prediction_head`` (the same module as ``predictor``), ``training_step``
  returning ``{"loss", "z", "feats"}`` and ``validation_step`` adding ``"z"``/``"feats"``, both
  detached, of the first large view; ``configure_callbacks`` from ``method_kwargs.analysis``.

The loss stays solo's: the embeddings are captured from ``base_training_step`` /
``base_validation_step`` (called by solo once per large view, first view first), so solo's
``training_step`` runs unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from solo_offdiag.config import ConfigError, OffDiagMethodConfig, to_mapping, validate_method_cfg
from solo_offdiag.config.validate import plain
from solo_offdiag.heads import PredictionHead, build_head

__all__ = ["MethodConfigError", "OffDiagHeadMixin", "prepare_offdiag_cfg", "typed_method_cfg"]


class MethodConfigError(ConfigError, CompactHydraException):
    """A :class:`~solo_offdiag.config.ConfigError` raised while a method is built from a config.

    Why a second base class: solo-learn's unmodified ``main_pretrain.py`` builds our method inside
    ``@hydra.main``, and Hydra reports any exception escaping the task as a stack trace, except a
    ``hydra.errors.CompactHydraException``, which it prints as its message alone before exiting
    with status 1 (the way it reports its own config errors). So a bad key of ours in solo's script
    gives one line (key, value, what is allowed) and no traceback; ``HYDRA_FULL_ERROR=1`` still
    shows the full trace. Nothing is patched: no excepthook, no change to Hydra or solo-learn, no
    ``sys.exit`` inside a constructor. For library users it is still a ``ConfigError`` (and so a
    ``ValueError``): ``except ConfigError`` catches it as before.
    """


def _plain_mapping(cfg: Any) -> dict[str, Any]:
    data = plain(cfg)
    if isinstance(data, Mapping):
        return dict(data)
    raise TypeError(f"expected a DictConfig or mapping, got {type(cfg).__name__}")


def typed_method_cfg(cfg: Any) -> OffDiagMethodConfig:
    """Validate a whole solo config (DictConfig or mapping); return our typed ``method_kwargs``."""
    return validate_method_cfg(_plain_mapping(cfg))


def prepare_offdiag_cfg(cfg: DictConfig, *, static_lr_default: bool, output_norm: bool = True) -> DictConfig:
    """Validate our keys in ``cfg`` and write every default back into ``cfg.method_kwargs``.

    Filling the defaults in place means solo's BYOL/SimSiam find ``proj_*``/``pred_hidden_dim``,
    and the checkpoint's ``args.json`` and hyper-parameters record the full head configuration.

    ``static_lr_default`` is the method's default for ``predictor.static_lr`` when the key is
    absent (SimSiam: true, as solo pins its predictor to the global lr; it is false whenever
    ``predictor.lr`` is set, since a pinned group would ignore that lr). ``output_norm``: whether
    the method implements ``predictor.output_norm`` (a method that does not refuses any value but
    ``none``, rather than ignoring it).

    Raises:
        MethodConfigError: (a ``ConfigError``) any invalid key (see
            :func:`solo_offdiag.config.validate_method_cfg`), or ``predictor.static_lr: true``
            together with ``predictor.lr``.
    """
    try:
        return _prepare_offdiag_cfg(cfg, static_lr_default=static_lr_default, output_norm=output_norm)
    except MethodConfigError:
        raise
    except ConfigError as err:
        raise MethodConfigError(str(err)) from err


def _prepare_offdiag_cfg(cfg: DictConfig, *, static_lr_default: bool, output_norm: bool) -> DictConfig:
    plain_cfg = _plain_mapping(cfg)
    raw_predictor = (plain_cfg.get("method_kwargs") or {}).get("predictor") or {}
    typed = validate_method_cfg(plain_cfg)
    predictor = typed.predictor
    if "static_lr" in raw_predictor:
        static_lr = predictor.static_lr
    else:
        static_lr = static_lr_default and predictor.lr is None
    if static_lr and predictor.lr is not None:
        raise ConfigError(
            f"method_kwargs.predictor.static_lr: got true with predictor.lr={predictor.lr!r}; "
            "solo-learn's static_lr pins a group to optimizer.lr, so the head's own lr would be "
            "ignored: set static_lr: false or lr: null"
        )
    if not output_norm and predictor.output_norm != "none":
        raise ConfigError(
            f"method_kwargs.predictor.output_norm: got {predictor.output_norm!r}; allowed for "
            f"{plain_cfg.get('method', 'this method')}: 'none' (its outputs already pass a BatchNorm "
            "without affine parameters; 'batch' is implemented for byol_offdiag)"
        )
    filled = to_mapping(typed)
    filled["predictor"]["static_lr"] = static_lr
    if cfg.get("method_kwargs") is None:
        cfg.method_kwargs = {}
    for key, value in filled.items():
        cfg.method_kwargs[key] = value
    return cfg


class OffDiagHeadMixin:
    """Head replacement, head param group and analysis protocol for a solo-learn method.

    Subclasses (``class X(OffDiagHeadMixin, SoloMethod)``) call :meth:`_install_head` right after
    ``super().__init__(cfg)``.
    """

    offdiag_cfg: OffDiagMethodConfig

    @property
    def prediction_head(self) -> PredictionHead:
        """The prediction head (the module solo-learn calls ``predictor``)."""
        return self.predictor  # type: ignore[attr-defined,no-any-return]

    def _install_head(self, cfg: DictConfig) -> None:
        self.offdiag_cfg = typed_method_cfg(cfg)
        self._predictor_static_lr = bool(cfg.method_kwargs.predictor.static_lr)
        head = build_head(
            self.offdiag_cfg.predictor.kind,
            self.offdiag_cfg.proj_output_dim,
            **self.offdiag_cfg.head_options(),
        )
        # solo's forward and our compile lists use ``predictor``; ``prediction_head`` (the analysis
        # protocol's name) is a property, so the state dict holds the head once, as ``predictor.*``.
        self.predictor = head
        #: analysis output folder when ``analysis.out_dir`` is null (``solo-offdiag pretrain`` sets
        #: it to ``<run dir>/analysis``); None lets the callbacks choose (``trainer.log_dir``).
        self.analysis_out_dir: str | None = None
        self._captured_train: tuple[torch.Tensor, torch.Tensor] | None = None
        self._captured_val: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- optimiser --------------------------------------------------------------------------
    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        groups = [g for g in super().learnable_params if g.get("name") != "predictor"]  # type: ignore[misc]
        params = [p for p in self.prediction_head.parameters() if p.requires_grad]
        if not params:  # identity / DirectPred / DirectCopy: nothing to optimise
            return groups
        group: dict[str, Any] = {"name": "predictor", "params": params}
        predictor = self.offdiag_cfg.predictor
        if predictor.lr is not None:
            group["lr"] = predictor.lr
        weight_decay = predictor.group_weight_decay()
        if weight_decay is not None:
            group["weight_decay"] = weight_decay
        if self._predictor_static_lr:
            group["static_lr"] = True
        group.update(predictor.lars.group_settings())
        return groups + [group]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop solo's ``static_lr`` patch (a ``functools.partial`` bound to the live scheduler)
        from the saved scheduler state: ``configure_optimizers`` re-creates it on resume, and
        with it in the file ``torch.load(weights_only=True)`` (the default since torch 2.6, used
        by lightning 2.1.2's ``load_from_checkpoint``) refuses the checkpoint."""
        super().on_save_checkpoint(checkpoint)  # type: ignore[misc]
        for state in checkpoint.get("lr_schedulers", []):
            if isinstance(state, dict):
                state.pop("get_lr", None)

    # -- capture of the first large view's embeddings ------------------------------------------
    def base_training_step(self, X: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        out = super().base_training_step(X, targets)  # type: ignore[misc]
        if self._captured_train is None:
            self._captured_train = (out["z"].detach(), out["feats"].detach())
        return out

    def _apply_head_weight_decay_start(self) -> None:
        """``predictor.weight_decay_start``: the head group's decay is 0 before that fraction of
        the training steps, its configured value from then on (set before each optimiser step,
        so a resumed run gets the right value too)."""
        start = self.offdiag_cfg.predictor.weight_decay_start
        trainer = getattr(self, "_trainer", None)
        if start <= 0.0 or trainer is None:
            return
        total = trainer.estimated_stepping_batches
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                if group.get("name") != "predictor":
                    continue
                group.setdefault("_scheduled_weight_decay", group["weight_decay"])
                decay_on = trainer.global_step >= start * total
                group["weight_decay"] = group["_scheduled_weight_decay"] if decay_on else 0.0

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        self._captured_train = None
        self._apply_head_weight_decay_start()
        loss = super().training_step(batch, batch_idx)  # type: ignore[misc]
        if isinstance(loss, Mapping):  # pragma: no cover - solo's BYOL/SimSiam return a tensor
            loss = loss["loss"]
        z, feats = self._captured_train  # type: ignore[misc]
        self._captured_train = None
        return {"loss": loss, "z": z, "feats": feats}

    def base_validation_step(self, X: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        out = super().base_validation_step(X, targets)  # type: ignore[misc]
        self._captured_val = (out["z"].detach(), out["feats"].detach())
        return out

    def validation_step(
        self,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int | None = None,
        update_validation_step_outputs: bool = True,
    ) -> dict[str, Any]:
        self._captured_val = None
        metrics = super().validation_step(  # type: ignore[misc]
            batch, batch_idx, dataloader_idx, update_validation_step_outputs
        )
        # A new dict: solo keeps ``metrics`` in validation_step_outputs for its epoch averages,
        # and must not accumulate the embedding tensors there.
        out = dict(metrics)
        if self._captured_val is not None:
            out["z"], out["feats"] = self._captured_val
        self._captured_val = None
        return out

    # -- analysis callbacks -----------------------------------------------------------------
    def configure_callbacks(self) -> list[Any]:
        analysis = self.offdiag_cfg.analysis
        if not analysis.enabled:
            return []
        try:
            from solo_offdiag.analysis.callbacks import build_callbacks
        except ModuleNotFoundError as err:
            if err.name not in ("solo_offdiag.analysis.callbacks", "solo_offdiag.analysis"):
                raise
            warnings.warn(
                "method_kwargs.analysis.enabled is true, but this build of solo-offdiag has no "
                "solo_offdiag.analysis.callbacks: training runs without the analysis callbacks",
                RuntimeWarning,
                stacklevel=2,
            )
            return []
        return list(
            build_callbacks(
                analysis,
                head_is_linear=self.prediction_head.is_linear,
                out_dir=analysis.out_dir or self.analysis_out_dir,
            )
        )

"""Our keys under solo-learn's ``method_kwargs`` and their validation, done once at the entry.

This module knows nothing of solo-learn: it validates plain mappings, so the same checks run in
the Hydra plugin, in ``solo-offdiag pretrain`` and in the tests without solo installed.

Keys (``method_kwargs.*``)::

    predictor:
      kind: offdiag          # any registered head kind (``solo-offdiag heads``)
      options: {}            # options of that kind, e.g. {init: random} for linear
      lr: null               # head param-group lr; null = optimizer.lr (after solo's scaling)
      weight_decay: null     # head param-group weight decay; null = optimizer.weight_decay
      weight_decay_kinds: null  # head kinds that get weight_decay (others: optimizer.weight_decay);
                             # null = every kind
      weight_decay_start: 0.0  # fraction of the training steps before which the head group has
                             # no weight decay (then weight_decay); 0 = from the first step
      static_lr: false       # true: the head stays at the global lr with no schedule (solo's
                             # static_lr; SimSiam uses it for its predictor)
      output_norm: none      # batch: BN without affine on p and the target z before the loss
                             # (the theory's normalisation; byol_offdiag only)
      lars:                  # the head group's LARS settings (only with optimizer.name: lars)
        trust_ratio: true    # false: the head takes plain SGD(+momentum) steps, no trust ratio
        eta: null            # trust coefficient of the head group; null = optimizer.kwargs.eta
        clip_lr: null        # null = optimizer.kwargs.clip_lr
    analysis: {...}          # see solo_offdiag.analysis.config.AnalysisConfig

``predictor.lr`` is an **absolute** learning rate: unlike ``optimizer.lr``, solo-learn's
``parse_cfg`` does not scale it by ``batch_size * devices * num_nodes / 256``, and we do not
either, so the paper's "Adam, lr 3e-3 for the head" can be stated as is. It still follows the
warmup-cosine schedule (solo's scheduler scales every group with its own base lr).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from solo_offdiag.analysis.config import AnalysisConfig
from solo_offdiag.config.validate import ConfigError, from_mapping, non_negative, to_mapping
from solo_offdiag.heads import UnknownHeadError, build_head, head_options
from solo_offdiag.suggest import did_you_mean

__all__ = ["INERT_SOLO_KEYS", "OffDiagMethodConfig", "PredictorConfig", "PredictorLarsConfig",
           "check_num_large_crops", "inert_key_notes", "validate_method_cfg"]

#: solo-learn methods that do not compare exactly two large crops (every other one does, ours too).
_ANY_LARGE_CROPS = ("wmse", "mae")

#: keys that solo-learn's own stock BYOL/SimSiam recipes (scripts/pretrain/*/{byol,simsiam}.yaml)
#: carry under method_kwargs but that the wrapped method never reads: accepted (so every stock
#: recipe works with ``method=byol_offdiag``/``simsiam_offdiag``), with a note that they do nothing.
INERT_SOLO_KEYS: dict[str, str] = {
    "temperature": "solo-learn's SimSiam recipes carry it, but SimSiam's (and BYOL's) loss has no "
                   "temperature",
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class PredictorLarsConfig:
    """``method_kwargs.predictor.lars``: LARS settings of the head's param group only.

    solo-learn's LARS reads ``eta``, ``clip_lr`` and ``weight_decay`` per param group, so these work
    with solo's stock ``main_pretrain.py`` too. Under LARS a zero-initialised head (offdiag: A = 0)
    gets one plain step, then every step is bounded by ``eta * ||A||``: the head grows
    geometrically from a tiny norm while the encoder trains at full speed (docs/image_study.md).
    ``trust_ratio: false`` removes the bound (the group's steps are SGD with momentum at its lr).
    """

    trust_ratio: bool = True
    eta: float | None = field(default=None, metadata={"check": lambda v: v > 0, "allowed": "a number > 0 or null"})
    clip_lr: bool | None = None

    def group_settings(self) -> dict[str, Any]:
        """The keys this config sets on the head's param group (none at the defaults)."""
        out: dict[str, Any] = {}
        if not self.trust_ratio:
            # solo's LARS: lars_lr = eta * ||p|| / ||g|| then, with clip_lr, min(lars_lr / lr, 1):
            # an infinite eta makes the factor exactly 1, i.e. plain SGD on this group
            out.update(eta=math.inf, clip_lr=True)
            return out
        if self.eta is not None:
            out["eta"] = float(self.eta)
        if self.clip_lr is not None:
            out["clip_lr"] = bool(self.clip_lr)
        return out

    def __post_init__(self) -> None:
        if not self.trust_ratio and (self.eta is not None or self.clip_lr is not None):
            raise ConfigError(
                "method_kwargs.predictor.lars: trust_ratio is false, so eta/clip_lr would be ignored; "
                f"got eta={self.eta!r}, clip_lr={self.clip_lr!r}: set them to null or trust_ratio: true"
            )


@dataclass(frozen=True)
class PredictorConfig:
    """``method_kwargs.predictor``: which head, its options, its own optimiser settings."""

    kind: str = "offdiag"
    options: dict[str, Any] = field(default_factory=dict)
    lr: float | None = field(
        default=None, metadata={"check": non_negative, "allowed": "a number >= 0 or null"}
    )
    weight_decay: float | None = field(
        default=None, metadata={"check": non_negative, "allowed": "a number >= 0 or null"}
    )
    #: the head kinds that get ``weight_decay`` (null: every kind). A preset that sweeps kinds with
    #: one set of overrides can so decay only the identity-initialised heads (``offdiag``,
    #: ``diagonal``: there the decay pulls W back to I) and leave ``mlp``/``linear`` (whose decay
    #: pulls towards 0, a different regulariser) at ``optimizer.weight_decay``.
    weight_decay_kinds: list[str] | None = None
    #: the head group's weight decay is 0 before this fraction of the training steps, then
    #: ``weight_decay``: the head moves freely while the representation forms and is pulled back
    #: to its initialisation afterwards (docs/image_study.md)
    weight_decay_start: float = field(
        default=0.0, metadata={"check": lambda v: 0.0 <= v < 1.0, "allowed": "a number in [0, 1)"}
    )
    static_lr: bool = False
    lars: PredictorLarsConfig = field(default_factory=PredictorLarsConfig)
    #: ``batch``: standardise every coordinate of the prediction p and of the target z over the
    #: batch (BN without affine parameters, batch statistics) before the loss, as the theory's
    #: ``||BN(F) - sg BN(G)||^2`` does (byol_offdiag only; docs/image_study.md); ``none``: solo's
    #: BYOL loss on p and z as they are
    output_norm: Literal["none", "batch"] = "none"

    def group_weight_decay(self) -> float | None:
        """The head group's weight decay: ``weight_decay`` when it applies to this kind, else None
        (the group keeps ``optimizer.weight_decay``)."""
        if self.weight_decay_kinds is not None and self.kind not in self.weight_decay_kinds:
            return None
        return self.weight_decay

    def __post_init__(self) -> None:
        try:
            allowed = head_options(self.kind)
        except UnknownHeadError as err:
            raise ConfigError(f"method_kwargs.predictor.kind: {err}") from None
        for kind in self.weight_decay_kinds or []:
            try:
                head_options(kind)
            except UnknownHeadError as err:
                raise ConfigError(f"method_kwargs.predictor.weight_decay_kinds: {err}") from None
        for key in self.options:
            if key not in allowed:
                hint = did_you_mean(key, allowed)
                raise ConfigError(
                    f"method_kwargs.predictor.options: head {self.kind!r} has no option {key!r}"
                    f"{hint} (allowed: {', '.join(sorted(allowed)) or 'none'})"
                )


@dataclass(frozen=True)
class OffDiagMethodConfig:
    """``method_kwargs`` of ``byol_offdiag`` / ``simsiam_offdiag`` (solo's keys plus ours)."""

    proj_hidden_dim: int = field(default=4096, metadata={"check": lambda v: v > 0, "allowed": "> 0"})
    proj_output_dim: int = field(default=256, metadata={"check": lambda v: v > 0, "allowed": "> 0"})
    pred_hidden_dim: int = field(default=4096, metadata={"check": lambda v: v > 0, "allowed": "> 0"})
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    def head_options(self) -> dict[str, Any]:
        """Options passed to ``build_head``: the MLP's hidden width defaults to pred_hidden_dim."""
        options = dict(self.predictor.options)
        if self.predictor.kind == "mlp":
            options.setdefault("hidden_dim", self.pred_hidden_dim)
        return options


def validate_method_cfg(cfg: Mapping[str, Any]) -> OffDiagMethodConfig:
    """Validate a whole (plain-dict) solo-learn config for our methods; return our typed section.

    Checks, each with an error naming the key, the value and what is allowed:
    our ``method_kwargs`` keys (misspellings get the closest key suggested), the head kind and its
    options, ``predictor.options.dim`` (if given) against ``proj_output_dim``, learning rates
    (``optimizer.lr``, ``predictor.lr``) numeric and non-negative, ``data.num_large_crops == 2``.

    Raises:
        ConfigError: the first problem found.
    """
    method_kwargs = cfg.get("method_kwargs") or {}
    if not isinstance(method_kwargs, Mapping):
        raise ConfigError(f"method_kwargs: got {method_kwargs!r}; expected a mapping")
    method_kwargs = {k: v for k, v in method_kwargs.items() if k not in INERT_SOLO_KEYS}
    predictor = method_kwargs.get("predictor") or {}
    if not isinstance(predictor, Mapping):
        raise ConfigError(f"method_kwargs.predictor: got {predictor!r}; expected a mapping")
    options = predictor.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"method_kwargs.predictor.options: got {options!r}; expected a mapping")
    if isinstance(options, Mapping) and "dim" in options:
        proj = method_kwargs.get("proj_output_dim", OffDiagMethodConfig.proj_output_dim)
        if options["dim"] != proj:
            raise ConfigError(
                f"method_kwargs.predictor.options.dim: got {options['dim']!r}, but the head maps "
                f"the projector output to itself, so it must equal method_kwargs.proj_output_dim "
                f"({proj!r}); remove the key or make them equal"
            )
        options = {k: v for k, v in options.items() if k != "dim"}
        method_kwargs = {
            **method_kwargs,
            "predictor": {**method_kwargs["predictor"], "options": options},
        }
    typed = from_mapping(OffDiagMethodConfig, method_kwargs, prefix="method_kwargs")
    _check_predictor(typed, predictor)

    optimizer = cfg.get("optimizer") or {}
    if "lr" in optimizer:
        lr = optimizer["lr"]
        if not _is_number(lr) or not math.isfinite(float(lr)) or lr < 0:
            raise ConfigError(f"optimizer.lr: got {lr!r}; allowed: a finite number >= 0")

    lars = typed.predictor.lars
    if lars.group_settings() and str(optimizer.get("name", "lars")).lower() != "lars":
        raise ConfigError(
            f"method_kwargs.predictor.lars: got {to_mapping(lars)!r} with optimizer.name="
            f"{optimizer.get('name')!r}; these settings act only on LARS: remove them or use "
            "optimizer.name: lars"
        )

    check_num_large_crops(cfg.get("data") or {})
    return typed


def check_num_large_crops(data: Mapping[str, Any], method: str | None = None) -> None:
    """``data.num_large_crops`` must be 2: for our methods (``method=None``) and for solo-learn's
    ``method`` unless it is wmse or mae (``solo-offdiag pretrain`` runs those too).

    Raises:
        ConfigError: naming the key, the value and what is allowed.
    """
    crops = data.get("num_large_crops", 2)
    if crops == 2 or method in _ANY_LARGE_CROPS:
        return
    if method is None:
        raise ConfigError(
            f"data.num_large_crops: got {crops!r}; allowed: 2 (BYOL/SimSiam with an off-diagonal "
            "head compare exactly two large views; use num_small_crops for extra crops)"
        )
    raise ConfigError(
        f"augmentations: give {crops} large crops (data.num_large_crops); {method} needs exactly 2"
    )


def _check_predictor(typed: OffDiagMethodConfig, raw_predictor: Mapping[str, Any]) -> None:
    """Values of the head options (by building the head once) and ``static_lr`` with ``lr``."""
    predictor = typed.predictor
    for key in ("lr", "weight_decay"):
        value = getattr(predictor, key)
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"method_kwargs.predictor.{key}: got {value!r}; allowed: a finite number >= 0 or null")
    if raw_predictor.get("static_lr") is True and predictor.lr is not None:
        raise ConfigError(
            f"method_kwargs.predictor.static_lr: got true with predictor.lr={predictor.lr!r}; "
            "solo-learn's static_lr pins a group to optimizer.lr, so the head's own lr would be "
            "ignored: set static_lr: false or lr: null"
        )
    options = typed.head_options()
    try:
        build_head(predictor.kind, typed.proj_output_dim, **options)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"method_kwargs.predictor.options: got {dict(predictor.options)!r} for head "
            f"{predictor.kind!r}: {err}"
        ) from None


def inert_key_notes(cfg: Mapping[str, Any]) -> list[str]:
    """One note per :data:`INERT_SOLO_KEYS` key present in ``cfg['method_kwargs']``."""
    method_kwargs = cfg.get("method_kwargs") or {}
    if not isinstance(method_kwargs, Mapping):
        return []
    return [f"method_kwargs.{key}={method_kwargs[key]!r} has no effect with {cfg.get('method')} "
            f"({why})" for key, why in INERT_SOLO_KEYS.items() if key in method_kwargs]


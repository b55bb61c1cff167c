"""Step-speed switches (issue #6), the ``performance:`` config section, solo-free.

Keys (top-level ``performance:`` of a pretrain config; all optional)::

    performance:
      data_loader: solo         # solo: solo-learn's PIL + CPU-worker loader; gpu: GPUPretrainDataModule
      augment_seed: null        # gpu loader: int -> reproducible index order and augmentations
      download: false           # gpu loader: let torchvision download CIFAR/STL-10 into data.train_path
      image_size: null          # gpu loader, image folders: short side resize + centre crop on decode
      precision: null           # null: keep solo's top-level `precision`; else e.g. bf16-mixed
      channels_last: true       # model and views in channels-last memory format
      fused_optimizer: true     # fused=True for torch SGD/Adam/AdamW on CUDA (solo's LARS: see below)
      sync_free_lars: true      # replace solo's LARS (a host sync per parameter) by SyncFreeLARS
      matmul_precision: high    # torch.set_float32_matmul_precision (TF32 on Ampere+)
      cudnn_benchmark: true     # Trainer(benchmark=...)
      torch_compile: false      # nn.Module.compile() each of compile_modules in place
      compile_mode: default     # torch.compile mode
      compile_modules: [backbone, projector, momentum_backbone, momentum_projector, predictor]
      cuda_graphs: false        # CUDA graphs via compile mode reduce-overhead (needs torch_compile, CUDA)

The entry point validates once with :meth:`PerformanceConfig.from_mapping`, checks the device with
:meth:`PerformanceConfig.check_device`, passes :func:`trainer_kwargs` to the ``Trainer``,
:func:`optimizer_kwargs` into solo's ``optimizer.kwargs``, and calls :func:`apply_performance`
on the built method before ``fit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from solo_offdiag.config.validate import ConfigError, from_mapping, positive

__all__ = [
    "PerformanceConfig",
    "SyncFreeLARS",
    "apply_performance",
    "forbid_host_sync",
    "in_place_momentum_update",
    "optimizer_kwargs",
    "trainer_kwargs",
]

_PRECISIONS = ("32", "32-true", "bf16-mixed", "bf16-true", "16-mixed", "16-true")
_FUSABLE = ("sgd", "adam", "adamw")
DEFAULT_COMPILE_MODULES = ("backbone", "projector", "momentum_backbone", "momentum_projector", "predictor")


@dataclass(frozen=True)
class PerformanceConfig:
    """The ``performance:`` section; see the module docstring for every key."""

    data_loader: Literal["solo", "gpu"] = "solo"
    augment_seed: int | None = None
    download: bool = False
    image_size: int | None = field(default=None, metadata={"check": positive, "allowed": "an integer > 0 or null"})
    precision: str | None = field(
        default=None,
        metadata={"check": lambda v: v in _PRECISIONS, "allowed": "null or one of " + ", ".join(_PRECISIONS)},
    )
    channels_last: bool = True
    fused_optimizer: bool = True
    sync_free_lars: bool = True
    matmul_precision: Literal["highest", "high", "medium"] = "high"
    cudnn_benchmark: bool = True
    torch_compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    compile_modules: tuple[str, ...] = DEFAULT_COMPILE_MODULES
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        if self.cuda_graphs and not self.torch_compile:
            raise ConfigError(
                "performance.cuda_graphs: got true with performance.torch_compile false; CUDA graphs "
                "are captured by torch.compile (mode reduce-overhead): set torch_compile: true"
            )
        if self.cuda_graphs and self.compile_mode == "max-autotune-no-cudagraphs":
            raise ConfigError(
                "performance.compile_mode: got 'max-autotune-no-cudagraphs' with cuda_graphs: true; "
                "allowed: default, reduce-overhead, max-autotune"
            )
        if not self.cuda_graphs and self.compile_mode in ("reduce-overhead", "max-autotune"):
            raise ConfigError(
                f"performance.compile_mode: got {self.compile_mode!r}, which captures CUDA graphs, "
                "with cuda_graphs: false; set cuda_graphs: true or use default / "
                "max-autotune-no-cudagraphs"
            )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> PerformanceConfig:
        return from_mapping(cls, data, prefix="performance")

    @property
    def effective_compile_mode(self) -> str:
        if self.cuda_graphs and self.compile_mode == "default":
            return "reduce-overhead"
        return self.compile_mode

    def check_device(self, device_type: str) -> None:
        """Refuse switches the device cannot honour (``device_type`` as in ``torch.device.type``)."""
        if self.cuda_graphs and device_type != "cuda":
            raise ConfigError(f"performance.cuda_graphs: got true on device {device_type!r}; allowed only on cuda")
        if self.precision in ("16-mixed", "16-true") and device_type == "cpu":
            raise ConfigError(
                f"performance.precision: got {self.precision!r} on cpu; allowed there: 32, bf16-mixed"
            )
        if (
            self.precision in ("bf16-mixed", "bf16-true")
            and device_type == "cuda"
            and torch.cuda.is_available()
            and not torch.cuda.is_bf16_supported()
        ):
            raise ConfigError(f"performance.precision: got {self.precision!r}; this GPU has no bf16 support")


def trainer_kwargs(cfg: PerformanceConfig, solo_precision: Any = None) -> dict[str, Any]:
    """Keyword arguments for ``lightning.Trainer``: ``precision`` and ``benchmark``."""
    precision = cfg.precision if cfg.precision is not None else solo_precision
    out: dict[str, Any] = {"benchmark": cfg.cudnn_benchmark}
    if precision is not None:
        out["precision"] = precision
    return out


def optimizer_kwargs(cfg: PerformanceConfig, optimizer: str, device_type: str) -> dict[str, Any]:
    """Extra kwargs for solo's ``optimizer.kwargs``: ``fused=True`` where torch has a fused kernel.

    solo-learn's optimizers are ``sgd``, ``lars``, ``adam``, ``adamw``. LARS has no fused form; with
    ``sync_free_lars`` the entry point swaps in :class:`SyncFreeLARS` instead.
    """
    if cfg.fused_optimizer and device_type == "cuda" and optimizer in _FUSABLE:
        return {"fused": True}
    return {}


def apply_performance(model: nn.Module, cfg: PerformanceConfig, device_type: str) -> list[str]:
    """Apply the model-side switches in place; return what was done (for the log).

    Sets the float32 matmul precision (process-global), converts ``model`` to channels-last, and
    with ``torch_compile`` compiles each module named in ``compile_modules`` that exists on the
    model *in place* (``nn.Module.compile``), so state-dict keys and checkpoints are unchanged.
    """
    cfg.check_device(device_type)
    done = []
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    done.append(f"float32 matmul precision {cfg.matmul_precision}")
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
        done.append("channels_last")
    if in_place_momentum_update(model):
        done.append("in-place momentum (EMA) update: fixed parameter storage, CUDA-graph safe")
    if cfg.torch_compile:
        found = [name for name in cfg.compile_modules if isinstance(getattr(model, name, None), nn.Module)]
        if not found:
            raise ConfigError(
                f"performance.compile_modules: none of {list(cfg.compile_modules)} is a submodule of "
                f"{type(model).__name__}"
            )
        for name in found:
            getattr(model, name).compile(mode=cfg.effective_compile_mode)
        done.append(f"torch.compile({cfg.effective_compile_mode}) of {', '.join(found)}")
    return done


def in_place_momentum_update(model: nn.Module) -> bool:
    """Make solo-learn's ``model.momentum_updater.update`` write into the momentum parameters in place.

    solo's ``MomentumUpdater.update`` does ``mp.data = tau * mp.data + (1 - tau) * op.data``: a new
    tensor is bound to every momentum parameter every step, so a captured CUDA graph (compile mode
    ``reduce-overhead``) would keep reading the old storage. The replacement computes the same
    expression with the same rounding (``mp *= tau``; ``mp += (1 - tau) * op``, three multi-tensor
    kernels) into the existing storage, so pointers stay fixed; ``cur_tau`` and ``update_tau`` are
    untouched. Returns whether ``model`` had such an updater (solo-free duck typing).
    """
    updater = getattr(model, "momentum_updater", None)
    if updater is None or not hasattr(updater, "update") or not hasattr(updater, "cur_tau"):
        return False

    @torch.no_grad()
    def update(online_net: nn.Module, momentum_net: nn.Module) -> None:
        pairs = [(op, mp) for op, mp in zip(online_net.parameters(), momentum_net.parameters())]
        if not pairs:
            return
        tau = updater.cur_tau
        momentum = [mp.data for _, mp in pairs]
        torch._foreach_mul_(momentum, tau)
        torch._foreach_add_(momentum, torch._foreach_mul([op.data for op, _ in pairs], 1 - tau))

    updater.update = update
    return True


@contextlib.contextmanager
def forbid_host_sync(enabled: bool = True) -> Iterator[None]:
    """On CUDA, make any synchronising call inside the block raise (``set_sync_debug_mode``)."""
    if not (enabled and torch.cuda.is_available()):
        yield
        return
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


class SyncFreeLARS(Optimizer):
    """LARS (You et al., 2017, "Large Batch Training of Convolutional Networks") without host syncs.

    The same update as solo-learn's ``solo.utils.lars.LARS`` (same arguments and defaults:
    trust ratio ``eta * ||p|| / (||g|| + wd * ||p|| + eps)``, skipped together with weight decay
    while ``||p|| == 0`` or ``||g|| == 0``; ``clip_lr`` caps it at ``min(ratio / lr, 1)``;
    ``exclude_bias_n_norm`` exempts 1-D parameters; then SGD with momentum/dampening/Nesterov).
    solo's version decides ``if p_norm != 0 and g_norm != 0`` and ``min(...)`` in Python, one
    device-to-host copy per (non-excluded) parameter per step; here both are ``torch.where``/``clamp`` on device,
    and the whole group is updated with ``torch._foreach_*`` kernels (norms, trust ratios, decay,
    momentum and the parameter update each one multi-tensor launch instead of one per parameter).
    The state keeps solo's key (``momentum_buffer``), so checkpoints load in either optimizer.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        eta: float = 1e-3,
        eps: float = 1e-8,
        clip_lr: bool = False,
        exclude_bias_n_norm: bool = False,
    ) -> None:
        if lr < 0:
            raise ValueError(f"lr: got {lr}; allowed: >= 0")
        if momentum < 0:
            raise ValueError(f"momentum: got {momentum}; allowed: >= 0")
        if weight_decay < 0:
            raise ValueError(f"weight_decay: got {weight_decay}; allowed: >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov: needs momentum > 0 and dampening == 0")
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
            eta=eta, eps=eps, clip_lr=clip_lr, exclude_bias_n_norm=exclude_bias_n_norm,
        )  # fmt: skip
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._step_group(group, params)
        return loss

    def _step_group(self, group: dict[str, Any], params: list[Any]) -> None:
        """One group's update with ``torch._foreach_*`` kernels (a handful of launches per group)."""
        wd, lr, momentum = group["weight_decay"], group["lr"], group["momentum"]
        scaled = [p for p in params if p.ndim != 1 or not group["exclude_bias_n_norm"]]
        updates: dict[int, Tensor] = {id(p): p.grad for p in params}
        if scaled:
            grads = [p.grad for p in scaled]
            p_norm = torch.stack(torch._foreach_norm(scaled))
            g_norm = torch.stack(torch._foreach_norm(grads))
            ratio = p_norm / (g_norm + p_norm * wd + group["eps"]) * group["eta"]
            if group["clip_lr"]:
                ratio = torch.clamp(ratio / lr, max=1.0)
            active = (p_norm != 0) & (g_norm != 0)
            scale = torch.where(active, ratio, 1.0)
            decay = torch.where(active, wd, 0.0).to(p_norm.dtype)
            d_ps = torch._foreach_addcmul(grads, scaled, list(decay.unbind()))  # grad + wd * p
            torch._foreach_mul_(d_ps, list(scale.unbind()))
            updates.update((id(p), d) for p, d in zip(scaled, d_ps))
        d_ps = [updates[id(p)] for p in params]
        if momentum != 0:
            fresh = [i for i, p in enumerate(params) if "momentum_buffer" not in self.state[p]]
            for i in fresh:
                self.state[params[i]]["momentum_buffer"] = torch.clone(d_ps[i]).detach()
            old = [i for i in range(len(params)) if i not in set(fresh)]
            if old:
                bufs = [self.state[params[i]]["momentum_buffer"] for i in old]
                torch._foreach_mul_(bufs, momentum)
                torch._foreach_add_(bufs, [d_ps[i] for i in old], alpha=1 - group["dampening"])
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            d_ps = torch._foreach_add(d_ps, bufs, alpha=momentum) if group["nesterov"] else bufs
        torch._foreach_add_(params, d_ps, alpha=-lr)

"""The simple setting of Wen & Li (2022), simulated with SGD, batched over arms (seeds, switches).

Wen & Li, "The Mechanism of Prediction Head in Non-contrastive Self-supervised Learning",
NeurIPS 2022, arXiv:2205.06226: "with a trainable identity-initialised head, a strong feature
learned by one neuron is substituted into another neuron through the head, which then accelerates
the learning of the weak feature". paper.md section 2 gives the model; :class:`TheoryConfig`
documents every parameter.

All arms of a batch advance together as ``[B, ...]`` tensors; there is no Python loop over arms,
neurons, samples or patches inside a step. Arms may differ in ``d`` (weights and noise live in the
first ``d`` coordinates of a padded ``R^{d_max}``; the padding receives exactly zero gradient),
in every scalar (alphas, noise, learning rates, seed) and in the switches (head, BN, stop-gradient).

Noise sampler. The forward pass only sees a noise patch ``xi`` through ``<w_j, xi>``, i.e. through
its coordinates ``a = Q^T xi`` in an orthonormal basis ``Q`` of the span of the weights. The
gradient is ``sum_ip g_ip xi_ip = Q sum_ip g_ip a_ip + (I - QQ^T) sum_ip g_ip zeta_ip`` where the
orthogonal parts ``zeta`` are independent of everything the loss saw, so the second term is, for
the ``m`` neurons jointly, ``(I - QQ^T) Z L^T`` with ``Z`` an ``[d, m]`` Gaussian and
``L L^T = sum_ip g_ip g_ip^T``. ``sampler="projected"`` draws exactly this law (O(d m) per step
instead of O(N P d)); ``sampler="full"`` draws every patch and is kept as the reference the tests
compare against.

Examples:
    >>> from solo_offdiag.theory import TheoryConfig, simulate
    >>> traj = simulate(TheoryConfig(d=8, steps=20, log_every=10))
    >>> traj.alignment.shape, traj.head.shape
    ((3, 2, 2), (3, 2, 2))
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from solo_offdiag.theory.config import STRUCTURAL_FIELDS, TheoryConfig

__all__ = [
    "CHUNK",
    "SimulationState",
    "Trajectory",
    "activation",
    "analytic_supported",
    "batch_norm",
    "complementary_masks",
    "view_counts_pmf",
    "gradients",
    "init_state",
    "simulate",
    "seeds_of",
    "simulate_batch",
    "sgd_step",
]

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass
class Trajectory:
    """Logged states of one run (unbatched) or of ``B`` arms (leading batch dimension).

    Arrays are numpy. Shapes without the batch dimension: ``steps [T]``, ``alignment [T, m, 2]``
    (``<w_j, v_l>/||w_j||``, signed), ``head [T, m, m]`` (the matrix ``E``), ``loss [T]``
    (mean minibatch loss since the previous log), ``weight_norm [T, m]``.
    """

    steps: np.ndarray
    alignment: np.ndarray
    head: np.ndarray
    loss: np.ndarray
    weight_norm: np.ndarray
    configs: list[TheoryConfig] = field(default_factory=list)
    wall_time_s: float = 0.0

    @property
    def batched(self) -> bool:
        return self.alignment.ndim == 4

    @property
    def offdiag_norm(self) -> np.ndarray:
        """``||E - I||_F`` per logged step."""
        m = self.head.shape[-1]
        return np.linalg.norm(self.head - np.eye(m), axis=(-2, -1))

    def arm(self, index: int) -> Trajectory:
        """The ``index``-th arm of a batched trajectory as an unbatched one."""
        if not self.batched:
            raise ValueError("arm(): this trajectory is not batched")
        return Trajectory(
            steps=self.steps,
            alignment=self.alignment[index],
            head=self.head[index],
            loss=self.loss[index],
            weight_norm=self.weight_norm[index],
            configs=[self.configs[index]],
            wall_time_s=self.wall_time_s,
        )

    def __len__(self) -> int:
        return int(self.alignment.shape[0]) if self.batched else 1

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Plain arrays for ``atomic_write_npz``."""
        return {
            f"{prefix}steps": self.steps,
            f"{prefix}alignment": self.alignment,
            f"{prefix}head": self.head,
            f"{prefix}loss": self.loss,
            f"{prefix}weight_norm": self.weight_norm,
        }


@dataclass
class SimulationState:
    """Everything that evolves, as ``[B, ...]`` tensors, plus the per-arm constants."""

    W: torch.Tensor  # [B, m, D] online weights (zero beyond each arm's d)
    A: torch.Tensor  # [B, m, m] off-diagonal parameters of E (diagonal ignored)
    W_target: torch.Tensor | None  # [B, m, D] EMA target weights, or None (same weights)
    consts: dict[str, torch.Tensor]
    structure: TheoryConfig  # the shared structural fields (taken from the first arm)
    generators: list[torch.Generator]  # one per data stream (distinct (seed, d) of the arms)
    grad: str = "auto"  # "analytic" (hand-written backward), "autograd", or "auto" (analytic if supported)
    buffer: dict[str, torch.Tensor] | None = None  # pre-drawn samples of the current chunk of steps
    cursor: int = 0  # next step of ``buffer`` to hand out
    # per-arm stream index [B] for the entries of ``buffer`` kept per data stream (gathered per
    # step in ``_sample``), or None when every arm has its own stream in order (no gather)
    stream_index: torch.Tensor | None = None


# --------------------------------------------------------------------------------------------
# Building blocks (pure tensor functions)
# --------------------------------------------------------------------------------------------
def activation(u: torch.Tensor, kind: str, truncation: float) -> torch.Tensor:
    """The cubic-type activation.

    ``normalized_cubic`` is ``u^3`` (the caller passes ``u = <w, x>/||w||``). ``truncated_cubic``
    is ``u^3`` for ``|u| <= tau`` and ``sign(u) (tau^3 + 3 tau^2 (|u| - tau))`` beyond: the same
    value and slope at ``tau``, linear growth, so no overflow for large weights.
    """
    if kind == "normalized_cubic":
        return u**3
    if kind == "truncated_cubic":
        tau = truncation
        outer = torch.sign(u) * (tau**3 + 3 * tau**2 * (u.abs() - tau))
        return torch.where(u.abs() <= tau, u**3, outer)
    raise ValueError(f"unknown activation {kind!r}; known: normalized_cubic, truncated_cubic")


def batch_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-neuron BN over the sample axis (dim -2) without affine parameters, batch statistics."""
    mean = x.mean(dim=-2, keepdim=True)
    var = x.var(dim=-2, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def view_counts_pmf(patches: int, n_feature: int) -> list[float]:
    """Law of the number of feature patches in view 1 (hypergeometric: ``P // 2`` of ``P`` drawn)."""
    half = patches // 2
    total = math.comb(patches, half)
    return [
        math.comb(n_feature, k) * math.comb(patches - n_feature, half - k) / total
        for k in range(n_feature + 1)
    ]


def complementary_masks(
    n_view1_features: torch.Tensor, patches: int, n_feature: int
) -> torch.Tensor:
    """View-1 membership ``[..., P]`` in {0, 1} of the patches (feature patches first).

    A uniformly random half of the patches is view 1 and the rest view 2 (complementary masking).
    Because the noise patches are i.i.d., only the *number* ``n1`` of feature patches falling in
    view 1 matters; given ``n1`` the view-1 noise patches are taken to be the first
    ``P // 2 - n1`` noise patches, which has the same law as a uniform random subset.
    """
    idx = torch.arange(patches, device=n_view1_features.device)
    n1 = n_view1_features[..., None]
    is_feature = idx < n_feature
    feature_in = is_feature & (idx < n1)
    noise_in = ~is_feature & (idx - n_feature < patches // 2 - n1)
    return (feature_in | noise_in).to(torch.get_default_dtype())


def _check_batchable(cfgs: Sequence[TheoryConfig]) -> None:
    if not cfgs:
        raise ValueError("simulate_batch: need at least one config")
    first = cfgs[0]
    for i, cfg in enumerate(cfgs[1:], start=1):
        for name in STRUCTURAL_FIELDS:
            if getattr(cfg, name) != getattr(first, name):
                raise ValueError(
                    f"simulate_batch: arm {i} has {name}={getattr(cfg, name)!r} but arm 0 has "
                    f"{getattr(first, name)!r}; structural fields ({', '.join(STRUCTURAL_FIELDS)}) "
                    "must agree within a batch"
                )


def stream_seed(seed: int, d: int) -> int:
    """Seed of the data stream of an arm: a function of its own ``seed`` and ``d`` only."""
    return (int(seed) * 1_000_003 + int(d) * 7919 + 0x5DEECE66D) % (2**63 - 1)


def init_state(
    cfgs: Sequence[TheoryConfig], device: str | torch.device = "cpu", grad: str = "auto"
) -> SimulationState:
    """Initial weights (per-arm seeded: equal seeds give equal inits across switches), E = I."""
    _check_batchable(cfgs)
    first = cfgs[0]
    device = torch.device(device)
    dtype = _DTYPES[first.dtype]
    d_max = max(c.d for c in cfgs)
    B, m = len(cfgs), first.m
    W = torch.zeros(B, m, d_max, dtype=dtype)
    for b, cfg in enumerate(cfgs):  # one-off init, not a per-step loop
        gen = torch.Generator().manual_seed(int(cfg.seed))
        w = torch.randn(m, cfg.d, generator=gen, dtype=torch.float64) * cfg.effective_init_std
        if cfg.init_balance:
            # neurons without a head start: equal |<w_j, v1>| and |<w_j, v2>| (signs kept), so no
            # neuron starts favouring v2 by chance, at the typical scale or the draws' RMS
            # (init_balance_scale, docs/theory.md)
            first_j = 1 if cfg.head_start is not None and cfg.head_start > 0 else 0
            std = cfg.effective_init_std
            if cfg.init_balance_scale == "typical":  # the init std: |cos| ~ 1/sqrt(d)
                mag = torch.full_like(w[first_j:, :1], std)
                if first_j:  # and the head-start neuron's v2 component (its v1 is set below)
                    w[0, 1] = std if w[0, 1] >= 0 else -std
            else:  # the RMS of the two draws (keeps the lottery of their magnitude)
                mag = w[first_j:, :2].pow(2).mean(dim=1, keepdim=True).sqrt()
            w[first_j:, :2] = torch.where(w[first_j:, :2] >= 0, mag, -mag)
        if cfg.head_start is not None and cfg.head_start > 0:
            # neuron 1 starts with cosine `head_start` with v1 (= e_1), keeping its norm
            rest = w[0, 1:].norm()
            c = cfg.head_start
            w[0, 0] = torch.sign(w[0, 0]) * rest * c / (1 - c * c) ** 0.5 if w[0, 0] != 0 else rest
        W[b, :, : cfg.d] = w.to(dtype)
    W = W.to(device)

    def col(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype, device=device)

    coord = torch.arange(d_max, device=device)
    consts = {
        "alpha1": col([c.alpha1 for c in cfgs]),
        "alpha2": col([c.alpha2 for c in cfgs]),
        "p_weak": col([c.p_weak for c in cfgs]),
        "coord_std": col([c.noise_std for c in cfgs]),  # xi ~ N(0, noise_std^2 I_d)
        "eta": col([c.eta for c in cfgs]),
        "eta_E": col([c.eta_E if c.head_trainable else 0.0 for c in cfgs]),
        "bn": torch.tensor([c.batch_norm for c in cfgs], device=device),
        "stop_gradient": torch.tensor([c.stop_gradient for c in cfgs], device=device),
        "any_bn": any(c.batch_norm for c in cfgs),  # python flags: skip unused code paths
        "all_bn": all(c.batch_norm for c in cfgs),
        "all_sg": all(c.stop_gradient for c in cfgs),
        "coord_mask": (coord[None, :] < torch.tensor([c.d for c in cfgs], device=device)[:, None])
        .to(dtype),
        "offdiag_mask": 1.0 - torch.eye(m, dtype=dtype, device=device),
        "eye": torch.eye(m, dtype=dtype, device=device),
        "view_cdf": torch.tensor(
            list(itertools.accumulate(view_counts_pmf(first.patches, first.n_feature_patches))),
            dtype=dtype, device=device,
        ),
    }
    # one data stream per distinct (seed, d): arms that differ only in their switches see the same
    # samples (paired comparisons), and an arm's stream does not depend on the rest of the batch
    keys = sorted({(int(c.seed), int(c.d)) for c in cfgs})
    generators = [torch.Generator(device=device).manual_seed(stream_seed(*k)) for k in keys]
    consts["stream"] = torch.tensor([keys.index((int(c.seed), int(c.d))) for c in cfgs], device=device)
    consts["stream_d"] = [k[1] for k in keys]  # type: ignore[assignment]
    return SimulationState(
        W=W,
        A=torch.zeros(B, m, m, dtype=dtype, device=device),
        W_target=W.clone() if first.ema > 0 else None,
        consts=consts,
        structure=first,
        generators=generators,
        grad=grad,
    )


def head_matrix(state: SimulationState) -> torch.Tensor:
    """``E = I + A * (1 - I)``: the diagonal is exactly 1 whatever ``A`` holds."""
    return state.consts["eye"] + state.A * state.consts["offdiag_mask"]


# --------------------------------------------------------------------------------------------
# One SGD step
# --------------------------------------------------------------------------------------------
#: Steps of samples drawn at once per data stream (the per-step RNG calls, one per stream and
#: tensor, dominated the step time). A constant, so an arm's stream depends on its own
#: (seed, d) only, never on the batch it runs in.
CHUNK = 64


def _chunk_len(state: SimulationState) -> int:
    """Steps per pre-drawn chunk: ``CHUNK`` for the ``projected`` sampler; 1 for the ``full``
    sampler (its ``[N, P-K, d]`` noise per step is large; it is the reference the tests use)."""
    return CHUNK if state.structure.sampler == "projected" else 1


def _refill(state: SimulationState) -> None:
    """Draw the next chunk of samples of every stream: per arm ``[C, B, ...]`` where the values use
    per-arm constants (label, amplitude), else per stream ``[C, S, ...]`` (``_sample`` gathers)."""
    s, c = state.structure, state.consts
    B, m, D = state.W.shape
    N, P, K = s.batch_size, s.patches, s.n_feature_patches
    dev, dt = state.W.device, state.W.dtype
    C = _chunk_len(state)
    rank = m * (2 if state.W_target is not None else 1)
    cols: dict[str, list[torch.Tensor]] = {"weak_u": [], "sign": [], "u": [], "coords": [], "orth": [], "noise": []}
    for gen, d in zip(state.generators, c["stream_d"]):
        cols["weak_u"].append(torch.rand((C, N), generator=gen, device=dev, dtype=dt))
        cols["sign"].append(torch.randint(0, 2, (C, N), generator=gen, device=dev).to(dt) * 2 - 1)
        cols["u"].append(torch.rand((C, N), generator=gen, device=dev, dtype=dt))
        if s.sampler == "projected":
            cols["coords"].append(torch.randn((C, N, P - K, rank), generator=gen, device=dev, dtype=dt))
            z = torch.zeros(C, D, m, device=dev, dtype=dt)
            z[:, :d] = torch.randn((C, d, m), generator=gen, device=dev, dtype=dt)
            cols["orth"].append(z)
        else:
            z = torch.zeros(C, N, P - K, D, device=dev, dtype=dt)
            z[..., :d] = torch.randn((C, N, P - K, d), generator=gen, device=dev, dtype=dt)
            cols["noise"].append(z)
    idx = c["stream"]
    same = len(state.generators) == B and bool(torch.equal(idx, torch.arange(B, device=idx.device)))

    def gather(name: str) -> torch.Tensor:
        """``[C, B, ...]`` (step-major, so that one step's slice is contiguous)."""
        stacked = torch.stack(cols[name], dim=1)
        return stacked if same else stacked[:, idx].contiguous()

    def per_stream(name: str) -> torch.Tensor:
        """``[C, S, ...]``, one entry per data stream; ``_sample`` hands out the arms' rows per step
        (the same values as gathering the whole chunk per arm, without a chunk-sized copy per arm)."""
        return torch.stack(cols[name], dim=1)

    weak = gather("weak_u") < c["p_weak"][:, None]
    amp = torch.where(weak, c["alpha2"][:, None], c["alpha1"][:, None]) * gather("sign")
    # the view split depends on the stream only (same law for every arm of a batch)
    n1 = torch.searchsorted(c["view_cdf"], per_stream("u").contiguous(), right=True).clamp_max(K)
    noise_view1 = (torch.arange(P - K, device=dev) < (P // 2 - n1)[..., None]).to(dt)
    buf = {"weak": weak, "amp": amp, "n1": n1, "noise_view1": noise_view1}
    if s.sampler == "projected":  # neuron/coordinate-major: [C, S, r, N, P-K]
        buf["coords"] = per_stream("coords").permute(0, 1, 4, 2, 3).contiguous()
        buf["orth"] = per_stream("orth")
    else:  # [C, S, D, N, P-K]
        buf["noise"] = per_stream("noise").permute(0, 1, 4, 2, 3).contiguous()
    state.stream_index = None if same else idx
    state.buffer = buf
    state.cursor = 0


def _sample(state: SimulationState) -> dict[str, torch.Tensor]:
    """One minibatch per arm: label, signed amplitude, view split, and the noise draws.

    Taken from the pre-drawn chunk (:func:`_refill`); each stream draws, per chunk of ``C``
    steps: the label uniforms ``[C, N]``, signs ``[C, N]``, view-split uniforms ``[C, N]``, then
    the noise (``projected``: coordinates ``[C, N, P-K, rank]`` and orthogonal Gaussians
    ``[C, d, m]``; ``full``: patches ``[C, N, P-K, d]``). Per arm, ``coords`` is handed out as
    ``[B, rank, N, P-K]`` and ``noise`` as ``[B, D, N, P-K]`` (inner axes contiguous)."""
    if state.buffer is None or state.cursor >= state.buffer["weak"].shape[0]:
        _refill(state)
    t = state.cursor
    state.cursor += 1
    idx = state.stream_index
    return {k: v[t] if idx is None or k in _PER_ARM else v[t][idx] for k, v in state.buffer.items()}


#: entries of the sample buffer drawn per arm (they use per-arm constants); the rest is per stream
_PER_ARM = frozenset({"weak", "amp"})


def _branch_outputs(
    W: torch.Tensor, batch: dict[str, torch.Tensor], state: SimulationState, Q: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``f(X^(1))``, ``f(X^(2))`` (``[B, N, m]`` each) and the raw noise projections.

    Feature patches of a sample are identical (``z v_l``), so their activations are computed once
    and multiplied by the number of feature patches in each view.
    """
    s, c = state.structure, state.consts
    std = c["coord_std"][:, None, None, None]
    if s.sampler == "projected":
        WQ = torch.einsum("bmd,bdr->bmr", W, Q)
        noise = torch.einsum("brnp,bmr->bnpm", batch["coords"] * std, WQ)
    else:
        xi = batch["noise"] * std * c["coord_mask"][:, :, None, None]
        noise = torch.einsum("bdnp,bmd->bnpm", xi, W)
    # <w_j, z v_l> with v1 = e_1, v2 = e_2
    feat = batch["amp"][..., None] * torch.where(
        batch["weak"][..., None], W[:, None, :, 1], W[:, None, :, 0]
    )
    if s.activation == "normalized_cubic":
        inv_norm = 1.0 / W.norm(dim=-1)[:, None, :]
        feat, noise_scaled = feat * inv_norm, noise * inv_norm[:, :, None, :]
    else:
        noise_scaled = noise
    act_feat = activation(feat, s.activation, s.truncation)
    act_noise = activation(noise_scaled, s.activation, s.truncation)
    n1 = batch["n1"].to(W.dtype)[..., None]
    in1 = batch["noise_view1"][..., None]
    noise1 = (act_noise * in1).sum(dim=2)
    f1 = n1 * act_feat + noise1
    f2 = (s.n_feature_patches - n1) * act_feat + (act_noise.sum(dim=2) - noise1)
    return f1, f2, noise


def _loss(
    state: SimulationState, W: torch.Tensor, A: torch.Tensor, batch: dict[str, torch.Tensor],
    Q: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-arm loss ``[B]`` and the noise projections (for the orthogonal gradient part)."""
    s, c = state.structure, state.consts
    f1, f2, noise = _branch_outputs(W, batch, state, Q)
    if state.W_target is not None:
        _, target_raw, _ = _branch_outputs(state.W_target, batch, state, Q)
        target_raw = target_raw.detach()
    else:
        target_raw = f2
    E = c["eye"] + A * c["offdiag_mask"]
    online = torch.einsum("bjk,bnk->bnj", E, f1)
    bn = c["bn"][:, None, None]
    online = torch.where(bn, batch_norm(online, s.bn_eps), online)
    target = torch.where(bn, batch_norm(target_raw, s.bn_eps), target_raw)
    target = torch.where(c["stop_gradient"][:, None, None], target.detach(), target)
    loss = ((online - target) ** 2).sum(dim=-1).mean(dim=-1)
    return loss, noise


def _span_basis(state: SimulationState) -> torch.Tensor:
    """Orthonormal ``Q [B, D, r]`` whose columns span the rows of W (and of the EMA target)."""
    W = state.W if state.W_target is None else torch.cat([state.W, state.W_target], dim=1)
    Q, _ = torch.linalg.qr(W.transpose(1, 2))  # Householder: Q stays inside each arm's R^d
    return Q


def analytic_supported(state: SimulationState) -> bool:
    """The hand-written backward covers both activations with the same weights for the target
    (no EMA); an EMA target falls back to autograd."""
    return state.W_target is None


def _bn_forward(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """BN over the last (sample) axis: ``(xhat, 1/sqrt(var + eps))``."""
    mean = x.mean(dim=-1, keepdim=True)
    xc = x - mean
    inv_std = torch.rsqrt((xc * xc).mean(dim=-1, keepdim=True) + eps)
    return xc * inv_std, inv_std


def _bn_backward(g: torch.Tensor, xhat: torch.Tensor, inv_std: torch.Tensor) -> torch.Tensor:
    """Gradient through ``xhat = (x - mean) / sqrt(var + eps)`` (biased var, batch statistics):
    ``(g - mean(g) - xhat mean(g xhat)) / sqrt(var + eps)``, exact for any eps."""
    return inv_std * (g - g.mean(dim=-1, keepdim=True) - xhat * (g * xhat).mean(dim=-1, keepdim=True))


def _analytic(
    state: SimulationState, batch: dict[str, torch.Tensor], Q: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss ``[B]``, ``dL/dW``, ``dL/dA`` and ``dL/d(raw noise projections)`` ``[B, m, N*(P-K)]``,
    hand-written (forward and backward) for the normalised-cubic model; tested against autograd.

    Forward: ``u = <w_j, x>/||w_j||``, ``f = sum_p u^3`` per view, ``online = E f1``,
    ``L = mean_n ||BN(online) - BN(f2)||^2`` (BN per arm switch, stop-gradient per arm switch).
    Layout ``[B, m, samples]`` so that per-neuron factors broadcast along contiguous memory."""
    s, c = state.structure, state.consts
    W, A = state.W, state.A
    B, m, D = W.shape
    N, K = s.batch_size, s.n_feature_patches
    normalized = s.activation == "normalized_cubic"
    tau = s.truncation
    # raw (truncated) cubic: u = <w, x> itself (inv = 1), sigma'(u) = 3 min(u, tau)^2
    inv = torch.rsqrt((W * W).sum(dim=-1))[..., None] if normalized else torch.ones_like(W[..., :1])
    std = c["coord_std"][:, None, None]
    if Q is not None:
        cs = batch["coords"].reshape(B, Q.shape[-1], -1) * std  # [B, r, N*(P-K)]
        raw = torch.bmm(torch.bmm(W, Q), cs)  # [B, m, NP]
    else:
        cs = batch["noise"].reshape(B, D, -1) * (std * c["coord_mask"][:, :, None])
        raw = torch.bmm(W, cs)
    un = raw * inv
    if normalized:
        un2 = un * un  # sigma'(u) / 3
        an = (un2 * un).reshape(B, m, N, -1)  # [B, m, N, P-K]
    else:
        un2 = un.clamp(-tau, tau) ** 2
        an = activation(un, s.activation, tau).reshape(B, m, N, -1)
    in1 = batch["noise_view1"][:, None]  # [B, 1, N, P-K]
    noise1 = (an * in1).sum(dim=-1)  # [B, m, N]
    noise_tot = an.sum(dim=-1)
    weak = batch["weak"][:, None, :]  # [B, 1, N]
    Wl = torch.where(weak, W[:, :, 1:2], W[:, :, 0:1])  # [B, m, N]
    amp_inv = batch["amp"][:, None, :] * inv
    uf = amp_inv * Wl
    if normalized:
        uf2 = uf * uf
        af = uf2 * uf
    else:
        uf2 = uf.clamp(-tau, tau) ** 2
        af = activation(uf, s.activation, tau)
    n1 = batch["n1"].to(W.dtype)[:, None, :]
    n2 = K - n1
    f1 = n1 * af + noise1
    f2 = n2 * af + (noise_tot - noise1)
    E = c["eye"] + A * c["offdiag_mask"]
    online = torch.bmm(E, f1)
    any_bn, all_bn = c["any_bn"], c["all_bn"]
    bn = c["bn"][:, None, None]
    if any_bn:
        on_hat, on_is = _bn_forward(online, s.bn_eps)
        Th, T_is = _bn_forward(f2, s.bn_eps)
        if not all_bn:
            on_hat, Th = torch.where(bn, on_hat, online), torch.where(bn, Th, f2)
    else:
        on_hat, Th = online, f2
    diff = on_hat - Th
    loss = (diff * diff).sum(dim=(1, 2)) / N
    g = diff * (2.0 / N)
    if any_bn:
        gO = _bn_backward(g, on_hat, on_is)
        if not all_bn:
            gO = torch.where(bn, gO, g)
    else:
        gO = g
    gA = torch.bmm(gO, f1.transpose(1, 2)) * c["offdiag_mask"]
    gf1 = torch.bmm(E.transpose(1, 2), gO)  # [B, m, N]
    un2 = un2.reshape(B, m, N, -1)
    if c["all_sg"]:
        gu_f = 3.0 * uf2 * (n1 * gf1)
        gu_n = 3.0 * un2 * (in1 * gf1[..., None])
    else:
        gf2 = -g
        if any_bn:
            gb = _bn_backward(-g, Th, T_is)
            gf2 = gb if all_bn else torch.where(bn, gb, gf2)
        gf2 = gf2 * (~c["stop_gradient"]).to(W.dtype)[:, None, None]
        gu_f = 3.0 * uf2 * (n1 * gf1 + n2 * gf2)
        # = in1 * gf1 + (1 - in1) * gf2 exactly (in1 is 0/1), in one pass
        gu_n = 3.0 * un2 * torch.where(in1 > 0, gf1[..., None], gf2[..., None])
    gu_n = gu_n.reshape(B, m, -1)
    g_raw = gu_n * inv  # [B, m, NP]
    # d/dw_j: feature coordinate l of each sample, noise directions, and the 1/||w_j|| factor
    onehot = torch.stack([~batch["weak"], batch["weak"]], dim=-1).to(W.dtype)  # [B, N, 2]
    g_feat = torch.bmm(gu_f * amp_inv, onehot)  # [B, m, 2]
    g_dir = torch.bmm(g_raw, cs.transpose(1, 2))  # [B, m, r or D]
    gW = torch.bmm(g_dir, Q.transpose(1, 2)) if Q is not None else g_dir
    if normalized:  # the radial part of d(<w, x>/||w||)/dw
        S = (gu_f * uf).sum(dim=-1, keepdim=True) + (gu_n * un).sum(dim=-1, keepdim=True)  # [B, m, 1]
        gW = gW - W * (S * inv * inv)
    gW = torch.cat([gW[..., :2] + g_feat, gW[..., 2:]], dim=-1)
    return loss, gW, gA, g_raw


def gradients(
    state: SimulationState, batch: dict[str, torch.Tensor], method: str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-arm loss ``[B]`` and the stochastic gradients w.r.t. ``W`` and ``A`` on ``batch``.

    ``method``: "analytic" (hand-written backward, :func:`_analytic`), "autograd", or None for the
    state's choice ("auto": analytic where :func:`analytic_supported`)."""
    s, c = state.structure, state.consts
    method = method or state.grad
    if method == "auto":
        method = "analytic" if analytic_supported(state) else "autograd"
    if method == "analytic" and not analytic_supported(state):
        raise ValueError("gradients: the analytic backward needs ema=0 (same target weights)")
    Q = _span_basis(state) if s.sampler == "projected" else None
    if method == "analytic":
        loss, gW, gA, g_raw = _analytic(state, batch, Q)
        if Q is not None:
            gram = torch.bmm(g_raw, g_raw.transpose(1, 2))
    else:
        W = state.W.detach().requires_grad_(True)
        A = state.A.detach().requires_grad_(True)
        loss, noise = _loss(state, W, A, batch, Q)
        if Q is not None:
            gW, gA, g_noise = torch.autograd.grad(loss.sum(), [W, A, noise])
            gram = torch.einsum("bnpj,bnpk->bjk", g_noise, g_noise)
        else:
            gW, gA = torch.autograd.grad(loss.sum(), [W, A])
        loss = loss.detach()
    if Q is not None and Q.shape[-1] < state.W.shape[-1]:
        # the part of sum_ip g_ip xi_ip orthogonal to span(Q): (I - QQ^T) Z L^T, L L^T = G
        # (exactly zero, and skipped, when the weights span the whole padded R^D)
        evals, evecs = torch.linalg.eigh(gram)
        root = evecs * evals.clamp_min(0).sqrt()[:, None, :]
        Z = batch["orth"] * (c["coord_std"][:, None, None] * c["coord_mask"][:, :, None])
        Z_perp = Z - torch.bmm(Q, torch.bmm(Q.transpose(1, 2), Z))
        gW = gW + torch.bmm(root, Z_perp.transpose(1, 2))
    return loss, gW * c["coord_mask"][:, None, :], gA * c["offdiag_mask"]


def sgd_step(state: SimulationState) -> torch.Tensor:
    """One plain-SGD step of every arm in place; returns the per-arm minibatch loss ``[B]``."""
    c = state.consts
    loss, gW, gA = gradients(state, _sample(state))
    state.W = state.W - c["eta"][:, None, None] * gW
    state.A = state.A - c["eta_E"][:, None, None] * gA
    if state.W_target is not None:
        tau = state.structure.ema
        state.W_target = tau * state.W_target + (1 - tau) * state.W
    return loss


def _snapshot(state: SimulationState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    norm = state.W.norm(dim=-1)  # [B, m]
    align = state.W[..., :2] / norm[..., None]
    return align, head_matrix(state), norm


# --------------------------------------------------------------------------------------------
# Drivers
# --------------------------------------------------------------------------------------------
def simulate_batch(
    cfgs: Sequence[TheoryConfig],
    device: str | torch.device = "cpu",
    progress: bool | str = False,
    grad: str = "auto",
    threads: int | None = 1,
) -> Trajectory:
    """Simulate every config in ``cfgs`` as one batch (leading dimension ``B = len(cfgs)``).

    Deterministic per arm: the init is seeded by ``cfg.seed`` and the data stream by
    ``(cfg.seed, cfg.d)``, so an arm's trajectory does not depend on the other arms of the batch
    (up to floating-point reduction order), and arms that differ only in their switches (head,
    BN, stop-gradient, learning rates, ...) start equal and see the same samples.
    ``grad``: "auto" (hand-written backward where supported, else autograd), "analytic" or
    "autograd" (the reference; same samples, so the two agree up to rounding).
    ``threads``: torch CPU threads while simulating (restored after; None = leave as is). The
    tensors are small, so one thread is fastest: intra-op threads only add synchronisation, and
    on a loaded machine they made a step ~10x slower (docs/theory.md, "Speed").
    """
    cfgs = list(cfgs)
    if torch.device(device).type == "cpu" and threads is not None:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return simulate_batch(cfgs, device, progress, grad, threads=None)
        finally:
            torch.set_num_threads(previous)
    if grad not in ("auto", "analytic", "autograd"):
        raise ValueError(f"grad: got {grad!r}; allowed: auto, analytic, autograd")
    state = init_state(cfgs, device, grad=grad)
    s = state.structure
    T = s.steps // s.log_every + 1 + (1 if s.steps % s.log_every else 0)
    B, m, _ = state.W.shape
    dev, dt = state.W.device, state.W.dtype
    log_align = torch.empty(T, B, m, 2, dtype=dt, device=dev)
    log_head = torch.empty(T, B, m, m, dtype=dt, device=dev)
    log_norm = torch.empty(T, B, m, dtype=dt, device=dev)
    log_loss = torch.empty(T, B, dtype=dt, device=dev)
    log_steps: list[int] = []
    loss_acc = torch.zeros(B, dtype=dt, device=dev)
    n_acc = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        desc = progress if isinstance(progress, str) else "theory"
        bar = tqdm(total=s.steps, desc=desc, unit="step", leave=False, mininterval=0.5)
    start = time.perf_counter()
    for step in range(s.steps + 1):
        logging = step % s.log_every == 0 or step == s.steps
        if logging:
            k = len(log_steps)
            log_align[k], log_head[k], log_norm[k] = _snapshot(state)
            log_steps.append(step)
        # the final logged state gets its loss without an update
        loss = sgd_step(state) if step < s.steps else gradients(state, _sample(state))[0]
        loss_acc += loss
        n_acc += 1
        if logging:
            log_loss[k] = loss_acc / n_acc
            loss_acc.zero_()
            n_acc = 0
            if bar is not None:
                bar.update(step - bar.n)
    if bar is not None:
        bar.close()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    wall = time.perf_counter() - start
    traj = Trajectory(
        steps=np.asarray(log_steps, dtype=np.int64),
        alignment=log_align.transpose(0, 1).cpu().numpy(),
        head=log_head.transpose(0, 1).cpu().numpy(),
        loss=log_loss.transpose(0, 1).cpu().numpy(),
        weight_norm=log_norm.transpose(0, 1).cpu().numpy(),
        configs=cfgs,
        wall_time_s=wall,
    )
    return traj


def simulate(
    cfg: TheoryConfig, device: str | torch.device = "cpu", progress: bool | str = False
) -> Trajectory:
    """Simulate one config; the trajectory has no batch dimension. See :func:`simulate_batch`."""
    return simulate_batch([cfg], device=device, progress=progress).arm(0)


def seeds_of(cfg: TheoryConfig, n: int) -> list[TheoryConfig]:
    """``n`` copies of ``cfg`` with seeds ``cfg.seed, cfg.seed + 1, ...`` (for :func:`simulate_batch`)."""
    return [dataclasses.replace(cfg, seed=cfg.seed + i) for i in range(n)]

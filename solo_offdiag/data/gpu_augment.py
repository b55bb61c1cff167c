"""Batched, device-resident re-statement of solo-learn's per-view augmentation pipeline.

solo-learn builds each view as (``solo.data.pretrain_dataloader.build_transform_pipeline``, PIL
images, one sample at a time in CPU workers)::

    RandomResizedCrop(bicubic) -> RandomApply(ColorJitter, p) -> RandomGrayscale(p)
    -> RandomApply(GaussianBlur, p) -> RandomApply(Solarization, p) -> RandomApply(Equalization, p)
    -> RandomHorizontalFlip(p) -> ToTensor -> Normalize

:class:`GPUAugment` does the same to a whole uint8 batch ``[B, C, H, W]`` on whatever device it
lives on, with every random parameter drawn per sample and no Python loop over samples and no
host-device synchronisation (every decision is a tensor ``where``; tested by tracing on the
``meta`` device, where any data-dependent host read fails). The pieces:

* random resized crop: the crop box is drawn exactly as ``torchvision``'s
  ``RandomResizedCrop.get_params`` (10 tries, then the centre-crop fallback), vectorised over the
  batch. Crop + bicubic resize + horizontal flip are one separable resampling
  ``out = Wy @ img @ Wx^T`` with per-sample matrices whose rows are the antialiased bicubic
  (``a = -0.5``) weights PIL and ``torch.nn.functional.interpolate(..., antialias=True)`` use,
  restricted to the crop box. The flip reverses ``Wx``'s rows, which is exact because every op in
  between is flip-equivariant.
* colour jitter: torchvision applies brightness, contrast, saturation and hue in a random
  permutation drawn *per image*. kornia's ``ColorJitter`` draws one order per *batch* (a
  distributional difference). Brightness, contrast and saturation are all
  ``clamp(lerp(target, x, f))`` with target 0, the grey mean, and the grey image, so one blend per
  round serves all three; hue is computed once for the batch, between three rounds of the blends
  each image applies before its hue and three rounds of those after (``f = 1``, an exact identity,
  where an image has no blend in a round).
* grayscale, Gaussian blur (per-sample sigma, two batched matmuls with reflect padding folded
  into per-sample matrices, identity for images not blurred), solarisation (PIL's threshold 128
  on the 0..255 scale) and normalisation.
* the random numbers of all views are one ``torch.rand`` call per batch
  (:func:`draw_uniforms`); everything after it is pure tensor code
  (:meth:`GPUAugment.transform`), which ``torch.compile`` traces as one graph, seeded or not.
* constants (mean/std, luma weights) are copied to a device once and cached there: no per-batch
  host->device copy (tested by auditing every operand's device on ``meta``).

Remaining differences from solo-learn's PIL path (documented in docs/performance.md): we compute
in float32 and round nowhere (PIL rounds to uint8 after each op; at most 1/255 per op); PIL's
contrast uses the grey mean rounded to an integer; PIL's hue shift works on 8-bit HSV; PIL's
``GaussianBlur(radius)`` is an extended box-blur approximation, ours an exact truncated Gaussian
(radius ``ceil(3 * sigma_max)``), equal to ``torchvision.transforms.functional.gaussian_blur``.
Equalisation is not implemented (no recipe of this project uses it): a nonzero probability is
refused with an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from solo_offdiag.config.validate import ConfigError, from_mapping, plain, positive, unit_interval

__all__ = [
    "DATASET_STATS",
    "GPUAugment",
    "ViewAugmentConfig",
    "ViewParams",
    "apply_view",
    "draw_uniforms",
    "params_from_uniforms",
    "sample_view_params",
    "views_from_solo_cfg",
]

#: Per-dataset normalisation used by solo-learn (it overrides ``mean``/``std`` for these names).
DATASET_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "stl10": ((0.4914, 0.4823, 0.4466), (0.247, 0.243, 0.261)),
    "imagenet100": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
IMAGENET_STATS = DATASET_STATS["imagenet"]
#: RandomResizedCrop's aspect-ratio range (torchvision's default; solo-learn never changes it).
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
#: ITU-R 601-2 luma weights, as PIL's ``convert("L")`` and torchvision's ``rgb_to_grayscale``.
LUMA = (0.2989, 0.587, 0.114)
_RRC_TRIES = 10
_PROB = {"check": unit_interval, "allowed": "a probability in [0, 1]"}
_NONNEG = {"check": lambda v: v >= 0, "allowed": "a number >= 0"}


@dataclass(frozen=True)
class RRCConfig:
    enabled: bool = True
    crop_min_scale: float = field(default=0.08, metadata={"check": lambda v: 0 < v <= 1, "allowed": "in (0, 1]"})
    crop_max_scale: float = field(default=1.0, metadata={"check": lambda v: 0 < v <= 1, "allowed": "in (0, 1]"})

    def __post_init__(self) -> None:
        if self.crop_min_scale > self.crop_max_scale:
            raise ValueError(
                f"crop_min_scale: got {self.crop_min_scale!r}; allowed: <= crop_max_scale "
                f"({self.crop_max_scale!r})"
            )


@dataclass(frozen=True)
class ColorJitterConfig:
    prob: float = field(default=0.8, metadata=_PROB)
    brightness: float = field(default=0.4, metadata=_NONNEG)
    contrast: float = field(default=0.4, metadata=_NONNEG)
    saturation: float = field(default=0.2, metadata=_NONNEG)
    hue: float = field(default=0.1, metadata={"check": lambda v: 0 <= v <= 0.5, "allowed": "in [0, 0.5]"})


@dataclass(frozen=True)
class GrayscaleConfig:
    prob: float = field(default=0.2, metadata=_PROB)


@dataclass(frozen=True)
class GaussianBlurConfig:
    prob: float = field(default=0.0, metadata=_PROB)
    sigma_min: float = field(default=0.1, metadata={"check": positive, "allowed": "a number > 0"})
    sigma_max: float = field(default=2.0, metadata={"check": positive, "allowed": "a number > 0"})

    def __post_init__(self) -> None:
        if self.sigma_min > self.sigma_max:
            raise ValueError(
                f"sigma_min: got {self.sigma_min!r}; allowed: <= sigma_max ({self.sigma_max!r})"
            )


@dataclass(frozen=True)
class SolarizationConfig:
    prob: float = field(default=0.0, metadata=_PROB)


@dataclass(frozen=True)
class EqualizationConfig:
    prob: float = field(
        default=0.0,
        metadata={"check": lambda v: v == 0, "allowed": "0 (equalisation is not implemented on the GPU path; use data loader 'solo')"},
    )


@dataclass(frozen=True)
class HorizontalFlipConfig:
    prob: float = field(default=0.5, metadata=_PROB)


def _rgb_triple(v: Any) -> bool:
    return len(v) == 3


@dataclass(frozen=True)
class ViewAugmentConfig:
    """One view's augmentation, the keys of one entry of solo-learn's ``augmentations:`` list.

    The defaults are the first view of solo-learn's CIFAR ``asymmetric.yaml`` (the second view only
    differs by ``solarization.prob = 0.2``), normalised with CIFAR-10's statistics. ``mean`` and
    ``std`` are on the 0..1 scale; :meth:`from_solo_cfg` replaces them by :data:`DATASET_STATS`
    for a named dataset, as solo-learn does.

    Examples:
        >>> ViewAugmentConfig.from_solo_cfg({"crop_size": 32, "solarization": {"prob": 0.2}}).solarization.prob
        0.2
    """

    crop_size: int = field(default=32, metadata={"check": positive, "allowed": "an integer > 0"})
    rrc: RRCConfig = field(default_factory=RRCConfig)
    color_jitter: ColorJitterConfig = field(default_factory=ColorJitterConfig)
    grayscale: GrayscaleConfig = field(default_factory=GrayscaleConfig)
    gaussian_blur: GaussianBlurConfig = field(default_factory=GaussianBlurConfig)
    solarization: SolarizationConfig = field(default_factory=SolarizationConfig)
    equalization: EqualizationConfig = field(default_factory=EqualizationConfig)
    horizontal_flip: HorizontalFlipConfig = field(default_factory=HorizontalFlipConfig)
    num_crops: int = field(default=1, metadata={"check": positive, "allowed": "an integer > 0"})
    mean: tuple[float, ...] = field(
        default=DATASET_STATS["cifar10"][0], metadata={"check": _rgb_triple, "allowed": "3 numbers"}
    )
    std: tuple[float, ...] = field(
        default=DATASET_STATS["cifar10"][1],
        metadata={"check": lambda v: len(v) == 3 and min(v) > 0, "allowed": "3 numbers > 0"},
    )

    def __post_init__(self) -> None:
        if self.gaussian_blur.prob > 0 and self.crop_size <= self.blur_radius:
            raise ValueError(
                f"crop_size: got {self.crop_size!r}; allowed: > {self.blur_radius} when "
                f"gaussian_blur.prob > 0 (the blur's reflect padding needs it)"
            )

    @property
    def blur_radius(self) -> int:
        return math.ceil(3.0 * self.gaussian_blur.sigma_max)

    @classmethod
    def from_solo_cfg(cls, entry: Mapping[str, Any], dataset: str | None = None) -> ViewAugmentConfig:
        """Build from one entry of solo-learn's ``augmentations:`` list (a dict or DictConfig).

        Unknown keys raise :class:`ConfigError` naming the key. If ``dataset`` is one of
        :data:`DATASET_STATS`, its statistics win over ``mean``/``std`` (solo-learn's rule); for
        other datasets the entry's ``mean``/``std`` or ImageNet's are used.
        """
        data = plain(entry)
        if not isinstance(data, Mapping):
            raise ConfigError(f"augmentations entry: got {entry!r}; expected a mapping")
        data = dict(data)
        if dataset in DATASET_STATS:
            data["mean"], data["std"] = DATASET_STATS[dataset]
        else:
            data.setdefault("mean", IMAGENET_STATS[0])
            data.setdefault("std", IMAGENET_STATS[1])
        return from_mapping(cls, data, prefix="augmentations[]")


def views_from_solo_cfg(augmentations: Sequence[Mapping[str, Any]], dataset: str | None = None) -> list[ViewAugmentConfig]:
    """The per-view configs of solo-learn's ``augmentations:`` list, ``num_crops`` expanded."""
    if isinstance(augmentations, Mapping) or not augmentations:
        raise ConfigError(f"augmentations: got {augmentations!r}; expected a non-empty list of pipelines")
    views: list[ViewAugmentConfig] = []
    for i, entry in enumerate(plain(augmentations)):
        try:
            cfg = ViewAugmentConfig.from_solo_cfg(entry, dataset)
        except ConfigError as err:
            raise ConfigError(str(err).replace("augmentations[]", f"augmentations[{i}]")) from None
        views += [cfg] * cfg.num_crops
    return views


# ----------------------------------------------------------------------------- parameters


@dataclass
class ViewParams:
    """Per-sample random parameters of one view (all tensors of leading size ``B``).

    ``top, left, height, width``: the crop box in input pixels (integer-valued float tensors).
    ``order``: ``[B, 4]`` permutation of (0 brightness, 1 contrast, 2 saturation, 3 hue).
    Factors are torchvision's: brightness/contrast/saturation multiply, hue shifts (in turns).
    """

    top: Tensor
    left: Tensor
    height: Tensor
    width: Tensor
    flip: Tensor
    jitter: Tensor
    brightness: Tensor
    contrast: Tensor
    saturation: Tensor
    hue: Tensor
    order: Tensor
    grayscale: Tensor
    blur: Tensor
    sigma: Tensor
    solarize: Tensor


#: Columns of the per-view uniform draw (one ``torch.rand`` call per view, see :func:`draw_uniforms`).
_U_SCALE, _U_RATIO = slice(0, _RRC_TRIES), slice(_RRC_TRIES, 2 * _RRC_TRIES)
_U_TOP, _U_LEFT = 2 * _RRC_TRIES, 2 * _RRC_TRIES + 1
_U_ORDER = slice(2 * _RRC_TRIES + 2, 2 * _RRC_TRIES + 6)
(_U_FLIP, _U_JITTER, _U_BRIGHT, _U_CONTRAST, _U_SAT, _U_HUE, _U_GRAY, _U_BLUR, _U_SIGMA, _U_SOLAR) = range(
    2 * _RRC_TRIES + 6, 2 * _RRC_TRIES + 16
)
N_UNIFORMS = 2 * _RRC_TRIES + 16


def draw_uniforms(n_views: int, n: int, device: torch.device | str, generator: torch.Generator | None) -> Tensor:
    """Every random number of ``n_views`` views of ``n`` images: ``[n_views, n, N_UNIFORMS]`` in [0, 1).

    One RNG call per batch, so the random draw is the only part of the augmentation that touches a
    ``torch.Generator`` and everything after it (:func:`params_from_uniforms`, :func:`apply_view`)
    is pure tensor code that ``torch.compile`` traces without graph breaks, seeded or not.
    """
    return torch.rand((n_views, n, N_UNIFORMS), device=device, generator=generator)


def _scaled(u: Tensor, lo: float, hi: float) -> Tensor:
    return u * (hi - lo) + lo


def _jitter_range(value: float, centre: float) -> tuple[float, float]:
    # torchvision's ColorJitter: brightness/contrast/saturation -> [max(0, 1 - v), 1 + v].
    return max(0.0, centre - value), centre + value


def _crop_boxes(cfg: ViewAugmentConfig, u: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """torchvision's ``RandomResizedCrop.get_params`` for ``len(u)`` images at once."""
    n = u.shape[0]
    if not cfg.rrc.enabled:
        if height != width:
            raise ValueError(
                f"rrc.enabled=false resizes the whole image to a square crop; got {height}x{width} "
                "images (solo-learn's Resize would keep the aspect ratio)"
            )
        full = u.new_zeros(n)
        return full, full, full + height, full + width
    area = float(height * width)
    scale = _scaled(u[:, _U_SCALE], cfg.rrc.crop_min_scale, cfg.rrc.crop_max_scale)
    aspect = torch.exp(_scaled(u[:, _U_RATIO], math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1])))
    w = torch.round(torch.sqrt(area * scale * aspect))
    h = torch.round(torch.sqrt(area * scale / aspect))
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.argmax(valid.to(torch.uint8), dim=1, keepdim=True)  # first valid try (0 if none)
    found = valid.any(dim=1)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    # Fallback (no valid try): the centre crop with the ratio clamped into range, as torchvision.
    in_ratio = width / height
    if in_ratio < RRC_RATIO[0]:
        fw, fh = width, int(round(width / RRC_RATIO[0]))
    elif in_ratio > RRC_RATIO[1]:
        fh, fw = height, int(round(height * RRC_RATIO[1]))
    else:
        fw, fh = width, height
    w = torch.where(found, w, fw)
    h = torch.where(found, h, fh)
    top = torch.where(found, torch.floor(u[:, _U_TOP] * (height - h + 1)), (height - fh) // 2)
    left = torch.where(found, torch.floor(u[:, _U_LEFT] * (width - w + 1)), (width - fw) // 2)
    return top, left, h, w


def params_from_uniforms(cfg: ViewAugmentConfig, u: Tensor, height: int, width: int) -> ViewParams:
    """One view's parameters from its ``[n, N_UNIFORMS]`` uniforms (no RNG call, no host sync)."""
    top, left, h, w = _crop_boxes(cfg, u, height, width)
    cj = cfg.color_jitter
    return ViewParams(
        top=top,
        left=left,
        height=h,
        width=w,
        flip=u[:, _U_FLIP] < cfg.horizontal_flip.prob,
        jitter=u[:, _U_JITTER] < cj.prob,
        brightness=_scaled(u[:, _U_BRIGHT], *_jitter_range(cj.brightness, 1.0)),
        contrast=_scaled(u[:, _U_CONTRAST], *_jitter_range(cj.contrast, 1.0)),
        saturation=_scaled(u[:, _U_SAT], *_jitter_range(cj.saturation, 1.0)),
        hue=_scaled(u[:, _U_HUE], -cj.hue, cj.hue),
        order=torch.argsort(u[:, _U_ORDER], dim=1),
        grayscale=u[:, _U_GRAY] < cfg.grayscale.prob,
        blur=u[:, _U_BLUR] < cfg.gaussian_blur.prob,
        sigma=_scaled(u[:, _U_SIGMA], cfg.gaussian_blur.sigma_min, cfg.gaussian_blur.sigma_max),
        solarize=u[:, _U_SOLAR] < cfg.solarization.prob,
    )


def sample_view_params(
    cfg: ViewAugmentConfig,
    n: int,
    height: int,
    width: int,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> ViewParams:
    """Draw one view's parameters for ``n`` images of ``height x width`` (no host sync)."""
    return params_from_uniforms(cfg, draw_uniforms(1, n, device, generator)[0], height, width)


# ----------------------------------------------------------------------------- per-op kernels


def _cubic(x: Tensor, a: float = -0.5) -> Tensor:
    """Keys' cubic convolution kernel; ``a = -0.5`` is PIL's and torch's antialiased bicubic."""
    x = x.abs()
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


def resample_matrix(start: Tensor, length: Tensor, in_size: int, out_size: int, flip: Tensor | None = None) -> Tensor:
    """``[B, out_size, in_size]`` rows of antialiased bicubic weights for the box ``[start, start+length)``.

    Row ``i`` samples output pixel ``i`` at ``start + (i + 0.5) * length / out_size`` (half-pixel
    centres, ``align_corners=False``); when downscaling the kernel is stretched by the scale
    (antialiasing). Source pixels outside the box get weight 0 and each row is renormalised, which
    is what cropping first and then resizing does. ``flip`` reverses the rows of flipped samples.
    """
    dtype = torch.float32
    start = start.to(dtype)[:, None, None]
    length = length.to(dtype)[:, None, None]
    scale = length / out_size
    support = torch.clamp(scale, min=1.0)
    out_idx = torch.arange(out_size, device=start.device, dtype=dtype)[None, :, None]
    src = torch.arange(in_size, device=start.device, dtype=dtype)[None, None, :]
    centre = (out_idx + 0.5) * scale
    rel = src - start
    weights = _cubic((rel + 0.5 - centre) / support)
    weights = weights * ((rel >= 0) & (rel < length)).to(dtype)
    weights = weights / weights.sum(dim=2, keepdim=True)
    if flip is not None:
        weights = torch.where(flip[:, None, None], weights.flip(1), weights)
    return weights


def resized_crop(images: Tensor, params: ViewParams, size: int) -> Tensor:
    """Crop each image to its box, resize to ``size x size`` (bicubic, antialiased), flip; float in [0, 1]."""
    _, _, height, width = images.shape
    wy = resample_matrix(params.top, params.height, height, size)
    wx = resample_matrix(params.left, params.width, width, size, params.flip)
    x = images.to(torch.float32) / 255.0 if images.dtype == torch.uint8 else images.to(torch.float32)
    out = torch.matmul(torch.matmul(wy[:, None], x), wx.transpose(1, 2)[:, None])
    return out.clamp_(0.0, 1.0)  # bicubic overshoots; PIL saturates to 0..255


def grayscale(x: Tensor) -> Tensor:
    """``[B, 1, H, W]`` luma of an RGB batch (PIL/torchvision weights)."""
    r, g, b = x.unbind(dim=1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def _per_sample(v: Tensor) -> Tensor:
    return v.to(torch.float32)[:, None, None, None]


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return (x * _per_sample(factor)).clamp(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    f = _per_sample(factor)
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return (f * x + (1.0 - f) * mean).clamp(0.0, 1.0)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    f = _per_sample(factor)
    return (f * x + (1.0 - f) * grayscale(x)).clamp(0.0, 1.0)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue by ``shift`` turns per sample (HSV round trip, as torchvision on tensors)."""
    r, g, b = x.unbind(dim=1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    chroma = maxc - minc
    flat = chroma == 0
    sat = chroma / torch.where(flat, torch.ones_like(maxc), maxc)
    safe = torch.where(flat, torch.ones_like(chroma), chroma)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    hue6 = torch.where(is_r, bc - gc, torch.where(is_g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.remainder(hue6 / 6.0 + shift.to(x.dtype)[:, None, None], 1.0)
    # HSV -> RGB without a sector gather: channel n is v - v*s*clamp(min(k, 4 - k), 0, 1) with
    # k = (n + 6h) mod 6 for n = 5, 3, 1 (R, G, B).
    k = torch.remainder(torch.stack((hue * 6.0 + 5.0, hue * 6.0 + 3.0, hue * 6.0 + 1.0), dim=1), 6.0)
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    v = maxc.unsqueeze(1)
    return (v - v * sat.unsqueeze(1) * ramp).clamp(0.0, 1.0)


def color_jitter(x: Tensor, params: ViewParams) -> Tensor:
    """torchvision's ``RandomApply([ColorJitter], p)`` with a per-sample random op order.

    Each image applies brightness, contrast, saturation (the three blends) and hue in its own
    order. Hue is computed once for the whole batch: the three blends of an image are split into
    those before its hue (three "pre" rounds, identity ``f = 1`` where a blend comes after hue)
    and those after (three "post" rounds). A blend with ``f = 1`` is an exact identity
    (``lerp(t, x, 1) == x``), so the result is the sequential torchvision composition.
    """
    order = params.order
    hue_pos = torch.argmax((order == 3).to(torch.uint8), dim=1, keepdim=True)  # [n, 1]
    j = torch.arange(3, device=x.device)[None, :]
    blends = order.gather(1, j + (j >= hue_pos).to(order.dtype))  # the 3 blend ops in order, [n, 3]
    before = j < hue_pos  # [n, 3]: blend j comes before hue
    table = torch.stack((params.brightness, params.contrast, params.saturation), dim=1).to(torch.float32)
    f = table.gather(1, blends)  # [n, 3]
    factors = torch.cat((torch.where(before, f, 1.0), torch.where(before, 1.0, f)), dim=1)  # [n, 6]
    ops = torch.cat((blends, blends), dim=1)
    use_mean = (ops == 1).to(torch.float32)  # contrast blends towards the grey mean
    use_grey = (ops == 2).to(torch.float32)  # saturation towards the grey image; brightness to 0
    luma = _luma(x.device)
    out = x
    for round_ in range(6):
        if round_ == 3:
            out = adjust_hue(out, params.hue)
        grey = (out * luma).sum(dim=1, keepdim=True)
        mean = grey.mean(dim=(2, 3), keepdim=True)
        target = use_mean[:, round_, None, None, None] * mean + use_grey[:, round_, None, None, None] * grey
        out = torch.lerp(target, out, factors[:, round_, None, None, None]).clamp_(0.0, 1.0)
    return torch.where(params.jitter[:, None, None, None], out, x)


_LUMA_CACHE: dict[torch.device, Tensor] = {}


def _luma(device: torch.device) -> Tensor:
    """The luma weights as a ``[1, 3, 1, 1]`` tensor on ``device`` (copied there once)."""
    if device not in _LUMA_CACHE:
        _LUMA_CACHE[device] = torch.tensor(LUMA, device=device).view(1, 3, 1, 1)
    return _LUMA_CACHE[device]


def random_grayscale(x: Tensor, apply: Tensor) -> Tensor:
    return torch.where(apply[:, None, None, None], grayscale(x).expand_as(x), x)


def blur_matrix(sigma: Tensor, apply: Tensor | None, radius: int, size: int) -> Tensor:
    """``[B, size, size]`` matrices of a 1-D Gaussian blur with reflect padding (identity where not ``apply``).

    Row ``i`` holds the kernel taps ``exp(-k^2 / 2 sigma^2)`` (normalised, ``k = -radius..radius``)
    at the reflected source positions of ``i + k``, so ``M @ x`` is ``conv1d(pad(x, reflect))``.
    Rows of images that are not blurred are the identity (exact: a one-hot row).
    """
    device = sigma.device
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets[None, :] / sigma.to(torch.float32)[:, None]) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # [B, K]
    if apply is not None:
        kernel = torch.where(apply[:, None], kernel, (offsets == 0).to(torch.float32)[None, :])
    src = torch.arange(size, device=device)[:, None] + torch.arange(-radius, radius + 1, device=device)[None, :]
    src = torch.where(src < 0, -src, torch.where(src >= size, 2 * (size - 1) - src, src))  # reflect
    # [size, K, size] one-hot by comparison (F.one_hot validates its input range on CUDA: a host sync)
    onehot = (src[:, :, None] == torch.arange(size, device=device)).to(torch.float32)
    return torch.einsum("bk,ikj->bij", kernel, onehot)


def gaussian_blur(x: Tensor, sigma: Tensor, radius: int, apply: Tensor | None = None) -> Tensor:
    """Separable Gaussian blur, per-sample ``sigma``, kernel ``2 * radius + 1``, reflect padding.

    Two batched matmuls (``My @ x @ Mxᵀ``, :func:`blur_matrix`); images with ``apply`` false get
    identity matrices, i.e. are returned unchanged, with no data-dependent selection (a subset of
    the batch would need a host sync to size it).
    """
    _, _, h, w = x.shape
    my = blur_matrix(sigma, apply, radius, h)
    mx = my if h == w else blur_matrix(sigma, apply, radius, w)
    return torch.matmul(torch.matmul(my[:, None], x), mx.transpose(1, 2)[:, None])


def solarize(x: Tensor, apply: Tensor) -> Tensor:
    # PIL's ImageOps.solarize inverts 8-bit values >= 128, i.e. round(255 x) >= 128, i.e. x >= 0.5.
    return torch.where(apply[:, None, None, None] & (x >= 0.5), 1.0 - x, x)


def apply_view(images: Tensor, params: ViewParams, cfg: ViewAugmentConfig, mean: Tensor, std: Tensor) -> Tensor:
    """One view for a batch with fixed ``params``: uint8 ``[B, C, H, W]`` -> normalised float.

    ``mean`` and ``std`` must already be on the images' device (:class:`GPUAugment` keeps one copy
    per device); nothing here copies from the host.
    """
    x = resized_crop(images, params, cfg.crop_size)
    rgb = x.shape[1] == 3
    if cfg.color_jitter.prob > 0:
        if not rgb:
            raise ValueError(f"color_jitter needs 3-channel images; got {x.shape[1]} channels")
        x = color_jitter(x, params)
    if cfg.grayscale.prob > 0 and rgb:
        x = random_grayscale(x, params.grayscale)
    if cfg.gaussian_blur.prob > 0:
        x = gaussian_blur(x, params.sigma, cfg.blur_radius, None if cfg.gaussian_blur.prob >= 1 else params.blur)
    if cfg.solarization.prob > 0:
        x = solarize(x, params.solarize)
    return (x - mean) / std


# ----------------------------------------------------------------------------- module


class GPUAugment(nn.Module):
    """Batched multi-view augmentation: uint8 ``[B, C, H, W]`` -> ``[view_1, ..., view_n]``.

    Args:
        views: one :class:`ViewAugmentConfig` per output view (an asymmetric pipeline is a list
            of two different configs), or a single config (used for ``num_crops`` views).
        seed: seeds a private generator (one per device, created lazily) so that the parameter
            draws are reproducible and independent of the global RNG; ``None`` uses the global
            RNG of the batch's device.
        channels_last: return views in ``torch.channels_last`` memory format.

    Examples:
        >>> aug = GPUAugment([ViewAugmentConfig(), ViewAugmentConfig()], seed=0)
        >>> x1, x2 = aug(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
        >>> tuple(x1.shape), x1.dtype
        ((4, 3, 32, 32), torch.float32)
    """

    def __init__(
        self,
        views: Sequence[ViewAugmentConfig] | ViewAugmentConfig,
        *,
        seed: int | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(views, ViewAugmentConfig):
            views = [views] * views.num_crops
        self.views = tuple(views)
        if not self.views:
            raise ValueError("GPUAugment needs at least one view config")
        self.seed = seed
        self.channels_last = channels_last
        self._generators: dict[str, torch.Generator] = {}
        # Normalisation constants, one copy per device: created on the host once, copied to a
        # device the first time a batch arrives there, then reused (no per-batch host->device
        # copy, whether or not anything ever calls .to() on this module).
        self._stats: dict[torch.device, list[tuple[Tensor, Tensor]]] = {}

    def set_seed(self, seed: int | None) -> None:
        """Reseed (drops the per-device generators; the next call recreates them)."""
        self.seed = seed
        self._generators.clear()

    def generator(self, device: torch.device) -> torch.Generator | None:
        """The seeded generator of ``device`` (``None`` without a seed, and on ``meta``, which has no RNG)."""
        if self.seed is None or device.type == "meta":
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def stats(self, device: torch.device) -> list[tuple[Tensor, Tensor]]:
        """``[(mean, std)]`` per view, ``[1, C, 1, 1]`` float32 on ``device`` (copied there once)."""
        if device not in self._stats:
            self._stats[device] = [
                (torch.tensor(cfg.mean, device=device).view(1, -1, 1, 1), torch.tensor(cfg.std, device=device).view(1, -1, 1, 1))
                for cfg in self.views
            ]
        return self._stats[device]

    def sample(self, n: int, height: int, width: int, device: torch.device) -> list[ViewParams]:
        u = draw_uniforms(len(self.views), n, device, self.generator(device))
        return [params_from_uniforms(cfg, u[i], height, width) for i, cfg in enumerate(self.views)]

    @torch.no_grad()
    def forward(self, images: Tensor, params: Sequence[ViewParams] | None = None) -> list[Tensor]:
        if images.ndim != 4:
            raise ValueError(f"expected a [B, C, H, W] batch; got shape {tuple(images.shape)}")
        n, c, h, w = images.shape
        stats = self.stats(images.device)
        for i, (mean, _) in enumerate(stats):
            if mean.shape[1] != c:
                raise ValueError(f"view {i}: mean/std have {mean.shape[1]} channels, images have {c}")
        if params is None:
            return self.transform(images, draw_uniforms(len(self.views), n, images.device, self.generator(images.device)), stats)
        return [self._finish(apply_view(images, p, cfg, *st)) for cfg, p, st in zip(self.views, params, stats)]

    def transform(self, images: Tensor, uniforms: Tensor, stats: Sequence[tuple[Tensor, Tensor]]) -> list[Tensor]:
        """Every view from the batch's uniforms (:func:`draw_uniforms`): pure tensor code, no RNG.

        This is the part to ``torch.compile`` (it has no generator call, so a seeded augmentation
        compiles without graph breaks; tests/data/test_gpu_augment.py checks it with
        ``torch._dynamo.explain``).
        """
        _, _, h, w = images.shape
        return [
            self._finish(apply_view(images, params_from_uniforms(cfg, uniforms[i], h, w), cfg, *stats[i]))
            for i, cfg in enumerate(self.views)
        ]

    def _finish(self, view: Tensor) -> Tensor:
        return view.contiguous(memory_format=torch.channels_last) if self.channels_last else view

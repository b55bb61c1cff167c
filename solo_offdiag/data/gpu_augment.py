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
  distributional difference), so we apply the four ops in four rounds; in round ``r`` every image
  applies the op at position ``r`` of its own permutation. Brightness, contrast and saturation are
  all ``clamp(f * x + (1 - f) * target)`` with target 0, the grey mean, and the grey image, so one
  blend per round serves all three; hue is computed for the batch and kept where selected.
* grayscale, Gaussian blur (per-sample sigma, separable grouped convolution with reflect padding),
  solarisation (PIL's threshold 128 on the 0..255 scale) and normalisation.

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


def _uniform(n: Any, lo: float, hi: float, device: torch.device, gen: torch.Generator | None) -> Tensor:
    shape = n if isinstance(n, tuple) else (n,)
    return torch.rand(shape, device=device, generator=gen) * (hi - lo) + lo


def _bernoulli(n: int, p: float, device: torch.device, gen: torch.Generator | None) -> Tensor:
    return torch.rand(n, device=device, generator=gen) < p


def _jitter_range(value: float, centre: float) -> tuple[float, float]:
    # torchvision's ColorJitter: brightness/contrast/saturation -> [max(0, 1 - v), 1 + v].
    return max(0.0, centre - value), centre + value


def _crop_boxes(
    cfg: ViewAugmentConfig, n: int, height: int, width: int, device: torch.device, gen: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """torchvision's ``RandomResizedCrop.get_params`` for ``n`` images at once."""
    if not cfg.rrc.enabled:
        if height != width:
            raise ValueError(
                f"rrc.enabled=false resizes the whole image to a square crop; got {height}x{width} "
                "images (solo-learn's Resize would keep the aspect ratio)"
            )
        full = torch.zeros(n, device=device)
        return full, full.clone(), full + height, full + width
    area = float(height * width)
    scale = _uniform((n, _RRC_TRIES), cfg.rrc.crop_min_scale, cfg.rrc.crop_max_scale, device, gen)
    log_ratio = _uniform((n, _RRC_TRIES), math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1]), device, gen)
    aspect = torch.exp(log_ratio)
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
    w = torch.where(found, w, torch.full_like(w, fw))
    h = torch.where(found, h, torch.full_like(h, fh))
    u_top = torch.rand(n, device=device, generator=gen)
    u_left = torch.rand(n, device=device, generator=gen)
    top = torch.where(found, torch.floor(u_top * (height - h + 1)), torch.full_like(h, (height - fh) // 2))
    left = torch.where(found, torch.floor(u_left * (width - w + 1)), torch.full_like(w, (width - fw) // 2))
    return top, left, h, w


def sample_view_params(
    cfg: ViewAugmentConfig,
    n: int,
    height: int,
    width: int,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> ViewParams:
    """Draw one view's parameters for ``n`` images of ``height x width`` (no host sync)."""
    device = torch.device(device)
    top, left, h, w = _crop_boxes(cfg, n, height, width, device, generator)
    cj = cfg.color_jitter
    order = torch.argsort(torch.rand(n, 4, device=device, generator=generator), dim=1)
    return ViewParams(
        top=top,
        left=left,
        height=h,
        width=w,
        flip=_bernoulli(n, cfg.horizontal_flip.prob, device, generator),
        jitter=_bernoulli(n, cj.prob, device, generator),
        brightness=_uniform(n, *_jitter_range(cj.brightness, 1.0), device, generator),
        contrast=_uniform(n, *_jitter_range(cj.contrast, 1.0), device, generator),
        saturation=_uniform(n, *_jitter_range(cj.saturation, 1.0), device, generator),
        hue=_uniform(n, -cj.hue, cj.hue, device, generator),
        order=order,
        grayscale=_bernoulli(n, cfg.grayscale.prob, device, generator),
        blur=_bernoulli(n, cfg.gaussian_blur.prob, device, generator),
        sigma=_uniform(n, cfg.gaussian_blur.sigma_min, cfg.gaussian_blur.sigma_max, device, generator),
        solarize=_bernoulli(n, cfg.solarization.prob, device, generator),
    )


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
    """torchvision's ``RandomApply([ColorJitter], p)`` with a per-sample random op order."""
    ones = torch.ones_like(params.brightness)
    out = x
    for round_ in range(4):
        op = params.order[:, round_]
        gray = grayscale(out)
        mean = gray.mean(dim=(1, 2, 3), keepdim=True)
        target = torch.where(
            (op == 0)[:, None, None, None],
            torch.zeros_like(mean),
            torch.where((op == 1)[:, None, None, None], mean, gray),
        )
        factor = torch.where(
            op == 0,
            params.brightness,
            torch.where(op == 1, params.contrast, torch.where(op == 2, params.saturation, ones)),
        )
        f = _per_sample(factor)
        blended = (f * out + (1.0 - f) * target).clamp(0.0, 1.0)  # f = 1 (hue round): exact identity
        is_hue = op == 3
        hued = adjust_hue(blended, torch.where(is_hue, params.hue, torch.zeros_like(params.hue)))
        out = torch.where(is_hue[:, None, None, None], hued, blended)
    return torch.where(params.jitter[:, None, None, None], out, x)


def random_grayscale(x: Tensor, apply: Tensor) -> Tensor:
    return torch.where(apply[:, None, None, None], grayscale(x).expand_as(x), x)


def gaussian_blur(x: Tensor, sigma: Tensor, radius: int) -> Tensor:
    """Separable Gaussian blur, per-sample ``sigma``, kernel ``2 * radius + 1``, reflect padding."""
    n, c, h, w = x.shape
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets[None, :] / sigma.to(torch.float32)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [n*c, K]
    flat = x.reshape(1, n * c, h, w)
    flat = nn.functional.pad(flat, (radius, radius, radius, radius), mode="reflect")
    flat = nn.functional.conv2d(flat, kernel[:, None, :, None], groups=n * c)
    flat = nn.functional.conv2d(flat, kernel[:, None, None, :], groups=n * c)
    return flat.reshape(n, c, h, w)


def solarize(x: Tensor, apply: Tensor) -> Tensor:
    # PIL's ImageOps.solarize inverts 8-bit values >= 128, i.e. round(255 x) >= 128, i.e. x >= 0.5.
    return torch.where(apply[:, None, None, None] & (x >= 0.5), 1.0 - x, x)


def apply_view(images: Tensor, params: ViewParams, cfg: ViewAugmentConfig, mean: Tensor, std: Tensor) -> Tensor:
    """One view for a batch with fixed ``params``: uint8 ``[B, C, H, W]`` -> normalised float."""
    x = resized_crop(images, params, cfg.crop_size)
    rgb = x.shape[1] == 3
    if cfg.color_jitter.prob > 0:
        if not rgb:
            raise ValueError(f"color_jitter needs 3-channel images; got {x.shape[1]} channels")
        x = color_jitter(x, params)
    if cfg.grayscale.prob > 0 and rgb:
        x = random_grayscale(x, params.grayscale)
    if cfg.gaussian_blur.prob > 0:
        x = torch.where(params.blur[:, None, None, None], gaussian_blur(x, params.sigma, cfg.blur_radius), x)
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
        for i, cfg in enumerate(self.views):
            self.register_buffer(f"mean_{i}", torch.tensor(cfg.mean).view(1, -1, 1, 1), persistent=False)
            self.register_buffer(f"std_{i}", torch.tensor(cfg.std).view(1, -1, 1, 1), persistent=False)

    def set_seed(self, seed: int | None) -> None:
        """Reseed (drops the per-device generators; the next call recreates them)."""
        self.seed = seed
        self._generators.clear()

    def generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]

    def sample(self, n: int, height: int, width: int, device: torch.device) -> list[ViewParams]:
        gen = self.generator(device)
        return [sample_view_params(cfg, n, height, width, device, gen) for cfg in self.views]

    @torch.no_grad()
    def forward(self, images: Tensor, params: Sequence[ViewParams] | None = None) -> list[Tensor]:
        if images.ndim != 4:
            raise ValueError(f"expected a [B, C, H, W] batch; got shape {tuple(images.shape)}")
        n, c, h, w = images.shape
        if params is None:
            params = self.sample(n, h, w, images.device)
        out = []
        for i, (cfg, p) in enumerate(zip(self.views, params)):
            mean, std = getattr(self, f"mean_{i}"), getattr(self, f"std_{i}")
            if mean.shape[1] != c:
                raise ValueError(f"view {i}: mean/std have {mean.shape[1]} channels, images have {c}")
            view = apply_view(images, p, cfg, mean.to(images.device), std.to(images.device))
            if self.channels_last:
                view = view.contiguous(memory_format=torch.channels_last)
            out.append(view)
        return out

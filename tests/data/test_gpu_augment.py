"""GPUAugment against torchvision's tensor transforms, on the CPU.

Two kinds of equivalence: every op on *fixed* parameters equals torchvision's functional op
(tensor backend, the numerical reference; solo-learn's PIL path differs from both by uint8
rounding, see docs/performance.md), and the *random* parameters follow torchvision's
distributions (RandomResizedCrop.get_params, ColorJitter.get_params, the RandomApply rates).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from scipy import stats
from torch.utils._python_dispatch import TorchDispatchMode

from solo_offdiag.config.validate import ConfigError
from solo_offdiag.data import gpu_augment as ga
from solo_offdiag.data.gpu_augment import (
    GPUAugment,
    ViewAugmentConfig,
    sample_view_params,
    views_from_solo_cfg,
)

BICUBIC = TF.InterpolationMode.BICUBIC

# solo-learn's scripts/pretrain/cifar/augmentations/asymmetric.yaml, as a mapping.
_VIEW = {
    "rrc": {"enabled": True, "crop_min_scale": 0.08, "crop_max_scale": 1.0},
    "color_jitter": {"prob": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1},
    "grayscale": {"prob": 0.2},
    "gaussian_blur": {"prob": 0.0},
    "solarization": {"prob": 0.0},
    "equalization": {"prob": 0.0},
    "horizontal_flip": {"prob": 0.5},
    "crop_size": 32,
    "num_crops": 1,
}
ASYMMETRIC = [_VIEW, {**_VIEW, "solarization": {"prob": 0.2}}]


def view(**keys) -> ViewAugmentConfig:
    """A view config from solo-style nested keys (CIFAR-10 statistics)."""
    return ViewAugmentConfig.from_solo_cfg(keys, "cifar10")


def smooth_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Natural-ish uint8 images: upsampled noise (pure noise would hide interpolation errors)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 4, size // 4, generator=g)
    return (torch.nn.functional.interpolate(low, size=size, mode="bilinear") * 255).round().to(torch.uint8)


def fixed_params(n: int, **overrides) -> ga.ViewParams:
    base = sample_view_params(ViewAugmentConfig(), n, 32, 32, generator=torch.Generator().manual_seed(1))
    for key, value in overrides.items():
        setattr(base, key, value)
    return base


# --------------------------------------------------------------------------- config


def test_from_solo_cfg_reads_solo_asymmetric_recipe():
    views = views_from_solo_cfg(ASYMMETRIC, "cifar10")
    assert [v.solarization.prob for v in views] == [0.0, 0.2]
    assert views[0] == ViewAugmentConfig()  # our defaults are solo's first CIFAR view
    assert views[1].mean == ga.DATASET_STATS["cifar10"][0]


def test_dataset_stats_override_and_fallback():
    assert views_from_solo_cfg([_VIEW], "stl10")[0].std == ga.DATASET_STATS["stl10"][1]
    custom = views_from_solo_cfg([{**_VIEW, "mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]}], "custom")[0]
    assert custom.mean == (0.1, 0.2, 0.3)
    assert views_from_solo_cfg([_VIEW], "custom")[0].mean == ga.IMAGENET_STATS[0]


def test_num_crops_expands_views():
    assert len(views_from_solo_cfg([{**_VIEW, "num_crops": 2}], "cifar10")) == 2


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"color_jitter": {"prob": 1.5}}, "augmentations[0].color_jitter.prob: got 1.5; allowed: a probability"),
        ({"rrc": {"crop_min_scale": 0.9, "crop_max_scale": 0.5}}, "augmentations[0].rrc: crop_min_scale: got 0.9"),
        ({"equalization": {"prob": 0.1}}, "equalization.prob: got 0.1; allowed: 0"),
        ({"color_jiter": {}}, "did you mean 'augmentations[0].color_jitter'"),
        ({"crop_size": 0}, "crop_size: got 0; allowed: an integer > 0"),
        ({"color_jitter": {"hue": 0.7}}, "color_jitter.hue: got 0.7; allowed: in [0, 0.5]"),
    ],
)
def test_bad_values_name_key_value_and_range(entry, message):
    with pytest.raises(ConfigError) as err:
        views_from_solo_cfg([entry], "cifar10")
    assert message in str(err.value)


# --------------------------------------------------------------------------- per-op, fixed params


def test_resized_crop_and_flip_match_torchvision_float_and_uint8():
    images = smooth_images(16)
    params = sample_view_params(ViewAugmentConfig(), 16, 32, 32, generator=torch.Generator().manual_seed(3))
    out = ga.resized_crop(images, params, 32)
    for b in range(16):
        box = [int(v[b]) for v in (params.top, params.left, params.height, params.width)]
        ref_f = TF.resized_crop(images[b].float() / 255, *box, [32, 32], BICUBIC, antialias=True).clamp(0, 1)
        ref_u8 = TF.resized_crop(images[b], *box, [32, 32], BICUBIC, antialias=True)
        if params.flip[b]:
            ref_f, ref_u8 = TF.hflip(ref_f), TF.hflip(ref_u8)
        torch.testing.assert_close(out[b], ref_f, atol=1e-5, rtol=0)
        assert (out[b] * 255 - ref_u8.float()).abs().max() <= 0.5 + 1e-3  # torchvision rounds to uint8


def test_resized_crop_downscaling_is_antialiased_like_torchvision():
    images = smooth_images(6, size=96)
    params = sample_view_params(view(crop_size=24), 6, 96, 96, generator=torch.Generator().manual_seed(4))
    out = ga.resized_crop(images, params, 24)
    for b in range(6):
        box = [int(v[b]) for v in (params.top, params.left, params.height, params.width)]
        ref = TF.resized_crop(images[b].float() / 255, *box, [24, 24], BICUBIC, antialias=True).clamp(0, 1)
        ref = TF.hflip(ref) if params.flip[b] else ref
        torch.testing.assert_close(out[b], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("ours", "theirs", "lo", "hi"),
    [
        (ga.adjust_brightness, TF.adjust_brightness, 0.6, 1.4),
        (ga.adjust_contrast, TF.adjust_contrast, 0.6, 1.4),
        (ga.adjust_saturation, TF.adjust_saturation, 0.8, 1.2),
        (ga.adjust_hue, TF.adjust_hue, -0.1, 0.1),
        (ga.adjust_hue, TF.adjust_hue, -0.5, 0.5),
    ],
)
def test_colour_ops_match_torchvision(ours, theirs, lo, hi):
    x = smooth_images(12).float() / 255
    factors = torch.linspace(lo, hi, 12)
    ref = torch.stack([theirs(x[i], float(factors[i])) for i in range(12)])
    torch.testing.assert_close(ours(x, factors), ref, atol=2e-6, rtol=0)


def test_hue_handles_grey_and_saturated_pixels():
    x = torch.tensor([[0.5, 0.5, 0.5], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0]]).T
    x = x[None, :, :, None]  # [1, 3, 6, 1]
    for shift in (-0.5, -0.1, 0.0, 0.25, 0.5):
        ref = TF.adjust_hue(x[0], shift)
        torch.testing.assert_close(ga.adjust_hue(x, torch.tensor([shift]))[0], ref, atol=2e-6, rtol=0)


def test_grayscale_solarize_blur_normalise_match_torchvision():
    x = smooth_images(8).float() / 255
    apply = torch.tensor([True, False] * 4)
    gray = torch.stack([TF.rgb_to_grayscale(x[i], 3) if apply[i] else x[i] for i in range(8)])
    torch.testing.assert_close(ga.random_grayscale(x, apply), gray, atol=1e-6, rtol=0)
    sol = torch.stack([TF.solarize(x[i], 0.5) if apply[i] else x[i] for i in range(8)])
    torch.testing.assert_close(ga.solarize(x, apply), sol, atol=0, rtol=0)
    sigma = torch.linspace(0.1, 2.0, 8)
    blur = torch.stack([TF.gaussian_blur(x[i], [13, 13], [float(sigma[i])] * 2) for i in range(8)])
    torch.testing.assert_close(ga.gaussian_blur(x, sigma, 6), blur, atol=2e-6, rtol=0)


def test_solarize_threshold_is_pils_on_uint8():
    values = torch.arange(256, dtype=torch.uint8)
    x = (values.float() / 255).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    ours = (ga.solarize(x, torch.tensor([True])) * 255).round().to(torch.uint8)[0, 0].flatten()
    pil = torch.where(values >= 128, 255 - values, values)  # PIL.ImageOps.solarize(threshold=128)
    assert torch.equal(ours, pil)


def test_full_view_equals_torchvision_sequence_on_fixed_params():
    """apply_view == crop -> jitter (this sample's op order) -> grey -> blur -> solarise -> flip -> normalise."""
    cfg = view(gaussian_blur={"prob": 0.5}, solarization={"prob": 0.5})
    n = 24
    images = smooth_images(n, seed=5)
    params = sample_view_params(cfg, n, 32, 32, generator=torch.Generator().manual_seed(6))
    params.order = torch.tensor(list(itertools.permutations(range(4))))[:n]  # every order once
    mean, std = torch.tensor(cfg.mean).view(1, 3, 1, 1), torch.tensor(cfg.std).view(1, 3, 1, 1)
    ours = ga.apply_view(images, params, cfg, mean, std)
    ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for b in range(n):
        box = [int(v[b]) for v in (params.top, params.left, params.height, params.width)]
        x = TF.resized_crop(images[b].float() / 255, *box, [32, 32], BICUBIC, antialias=True).clamp(0, 1)
        if params.jitter[b]:
            factors = [params.brightness[b], params.contrast[b], params.saturation[b], params.hue[b]]
            for op in params.order[b].tolist():
                x = ops[op](x, float(factors[op]))
        if params.grayscale[b]:
            x = TF.rgb_to_grayscale(x, 3)
        if params.blur[b]:
            x = TF.gaussian_blur(x, [13, 13], [float(params.sigma[b])] * 2)
        if params.solarize[b]:
            x = TF.solarize(x, 0.5)
        if params.flip[b]:
            x = TF.hflip(x)
        ref = TF.normalize(x, cfg.mean, cfg.std)
        torch.testing.assert_close(ours[b], ref, atol=1e-4, rtol=0, msg=f"sample {b}")


# --------------------------------------------------------------------------- parameter statistics


def _torchvision_boxes(n: int, height: int, width: int, scale=(0.08, 1.0)) -> torch.Tensor:
    torch.manual_seed(0)
    rrc = T.RandomResizedCrop(32, scale=scale)
    img = torch.zeros(3, height, width)
    return torch.tensor([rrc.get_params(img, rrc.scale, rrc.ratio) for _ in range(n)], dtype=torch.float64)


@pytest.mark.parametrize(("height", "width", "scale"), [(32, 32, (0.08, 1.0)), (24, 40, (0.5, 1.0))])
def test_rrc_box_distribution_matches_torchvision(height, width, scale):
    n = 8000
    ref = _torchvision_boxes(n, height, width, scale)
    cfg = view(rrc={"crop_min_scale": scale[0], "crop_max_scale": scale[1]})
    p = sample_view_params(cfg, n, height, width, generator=torch.Generator().manual_seed(7))
    ours = torch.stack([p.top, p.left, p.height, p.width], 1).double()
    assert (ours[:, 2] >= 1).all() and (ours[:, 0] + ours[:, 2] <= height).all()
    assert (ours[:, 3] >= 1).all() and (ours[:, 1] + ours[:, 3] <= width).all()
    for name, f in {
        "area": lambda b: b[:, 2] * b[:, 3],
        "aspect": lambda b: b[:, 3] / b[:, 2],
        "centre_y": lambda b: b[:, 0] + b[:, 2] / 2,
        "centre_x": lambda b: b[:, 1] + b[:, 3] / 2,
    }.items():
        result = stats.ks_2samp(f(ours).numpy(), f(ref).numpy())
        assert result.pvalue > 1e-3, (name, result)


def test_rrc_falls_back_to_centre_crop_like_torchvision():
    # A 4x40 strip: no try is valid for large scales, so both take the ratio-clamped centre crop.
    cfg = view(rrc={"crop_min_scale": 0.9, "crop_max_scale": 1.0})
    p = sample_view_params(cfg, 200, 4, 40, generator=torch.Generator().manual_seed(0))
    ref = _torchvision_boxes(200, 4, 40, (0.9, 1.0))
    assert set(map(tuple, torch.stack([p.top, p.left, p.height, p.width], 1).tolist())) == set(
        map(tuple, ref.tolist())
    )


def _binomial_ok(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


def test_rates_factor_ranges_and_orders_match_torchvision():
    n = 24000
    cfg = view(solarization={"prob": 0.2}, gaussian_blur={"prob": 0.3})
    p = sample_view_params(cfg, n, 32, 32, generator=torch.Generator().manual_seed(8))
    for flags, prob in [(p.jitter, 0.8), (p.grayscale, 0.2), (p.flip, 0.5), (p.solarize, 0.2), (p.blur, 0.3)]:
        assert _binomial_ok(int(flags.sum()), n, prob), (int(flags.sum()), prob)
    cj = T.ColorJitter(0.4, 0.4, 0.2, 0.1)
    torch.manual_seed(0)
    ref = [cj.get_params(cj.brightness, cj.contrast, cj.saturation, cj.hue) for _ in range(4000)]
    for i, ours in enumerate([p.brightness, p.contrast, p.saturation, p.hue]):
        theirs = torch.tensor([float(r[i + 1]) for r in ref])
        assert stats.ks_2samp(ours.numpy(), theirs.numpy()).pvalue > 1e-3
    # every one of the 24 op orders equally likely, per sample (torchvision: randperm(4) per call)
    codes = (p.order * torch.tensor([64, 16, 4, 1])).sum(1)
    counts = torch.bincount(codes, minlength=256)[torch.unique(codes)]
    assert len(counts) == 24
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3
    assert torch.equal(p.order.sort(1).values, torch.arange(4).expand(n, 4))


def test_asymmetric_views_solarise_only_the_second_view_at_its_rate():
    plain = {"color_jitter": {"prob": 0.0}, "grayscale": {"prob": 0.0}}
    aug = GPUAugment([view(**plain), view(**plain, solarization={"prob": 0.2})], seed=0)
    images = torch.full((4000, 3, 4, 4), 220, dtype=torch.uint8)  # bright: solarisation flips it
    x1, x2 = aug(images)
    mean, std = aug.views[0].mean[0], aug.views[0].std[0]
    torch.testing.assert_close(x1[:, 0], torch.full_like(x1[:, 0], (220 / 255 - mean) / std))
    solarised = torch.isclose(x2[:, 0], torch.tensor((35 / 255 - mean) / std)).all(-1).all(-1)
    assert _binomial_ok(int(solarised.sum()), 4000, 0.2)


# --------------------------------------------------------------------------- module behaviour


def test_output_shapes_dtype_and_determinism():
    images = smooth_images(8)
    a = GPUAugment(views_from_solo_cfg(ASYMMETRIC, "cifar10"), seed=123)
    b = GPUAugment(views_from_solo_cfg(ASYMMETRIC, "cifar10"), seed=123)
    xa, xb = a(images), b(images)
    assert [tuple(v.shape) for v in xa] == [(8, 3, 32, 32)] * 2 and xa[0].dtype == torch.float32
    assert all(torch.equal(u, v) for u, v in zip(xa, xb))
    assert not torch.equal(xa[0], a(images)[0])  # the generator advances
    assert not torch.equal(xa[0], xa[1])


def test_channels_last_and_multicrop_sizes():
    aug = GPUAugment([ViewAugmentConfig(), view(crop_size=16)], seed=0, channels_last=True)
    x1, x2 = aug(smooth_images(4))
    assert x1.is_contiguous(memory_format=torch.channels_last) and x2.shape[-1] == 16


def test_no_host_sync_by_tracing_on_meta_device():
    """Any .item(), bool(tensor) or data-dependent shape on the path would fail on 'meta'."""
    views = [view(gaussian_blur={"prob": 0.5}, solarization={"prob": 0.2})] * 2
    for seed in (None, 3):  # the seeded path runs there too (meta has no RNG: no generator)
        out = GPUAugment(views, seed=seed)(torch.empty(64, 3, 40, 40, dtype=torch.uint8, device="meta"))
        assert [tuple(v.shape) for v in out] == [(64, 3, 32, 32)] * 2 and out[0].device.type == "meta"


class _DeviceAudit(TorchDispatchMode):
    """Records every op that reads a tensor on another device than ``device`` or copies across devices."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device, self.foreign = device, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        leaves = [a for a in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        out = func(*args, **kwargs)
        outs = [o for o in torch.utils._pytree.tree_leaves(out) if isinstance(o, torch.Tensor)]
        for t in leaves + outs:
            # a 0-dim CPU tensor is a kernel argument (a wrapped number), not a copy
            if t.device != self.device and not (t.device.type == "cpu" and t.ndim == 0):
                self.foreign.append(f"{func} reads/writes a tensor on {t.device}")
        return out


def _audit_augment(device: torch.device, seed) -> list[str]:
    views = [view(gaussian_blur={"prob": 0.5}, solarization={"prob": 0.2}), view(crop_size=16)]
    aug = GPUAugment(views, seed=seed, channels_last=True)
    images = torch.randint(0, 256, (16, 3, 40, 40), dtype=torch.uint8).to(device)
    aug(images)  # first batch on a device: constants copied there once
    with _DeviceAudit(images.device) as audit:
        aug(images)
        aug(images)
    return audit.foreign


@pytest.mark.parametrize("seed", [None, 7])
def test_every_tensor_the_augmentation_uses_lives_on_the_batch_device(seed):
    """Issue #11: run on 'meta' (no host data at all) and check every op's operands and results
    are on the batch's device: a per-batch host->device copy of mean/std (or any constant) fails."""
    assert _audit_augment(torch.device("meta"), seed) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (detects real CPU->GPU copies)")
@pytest.mark.parametrize("seed", [None, 7])
def test_no_cpu_to_cuda_copy_in_the_augmentation_on_a_real_gpu(seed):
    assert _audit_augment(torch.device("cuda"), seed) == []
    aug = GPUAugment([view(), view(solarization={"prob": 0.2})], seed=seed)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, device="cuda")
    aug(images)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        aug(images)
    finally:
        torch.cuda.set_sync_debug_mode(0)


def test_seeded_transform_compiles_without_graph_breaks():
    """The RNG is one call outside ``transform``; the rest traces as one graph, seeded or not."""
    aug = GPUAugment(views_from_solo_cfg(ASYMMETRIC, "cifar10"), seed=0)
    images = smooth_images(4)
    u = ga.draw_uniforms(2, 4, "cpu", aug.generator(images.device))
    explained = torch._dynamo.explain(aug.transform)(images, u, aug.stats(images.device))
    assert explained.graph_break_count == 0 and explained.graph_count == 1


def test_rrc_disabled_resizes_whole_image():
    cfg = view(crop_size=16, rrc={"enabled": False}, color_jitter={"prob": 0.0},
                            grayscale={"prob": 0.0}, horizontal_flip={"prob": 0.0})  # fmt: skip
    images = smooth_images(2)
    out = GPUAugment(cfg, seed=0)(images)[0]
    ref = TF.normalize(TF.resize(images.float() / 255, [16, 16], BICUBIC, antialias=True).clamp(0, 1), cfg.mean, cfg.std)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="square"):
        GPUAugment(cfg)(torch.zeros(1, 3, 8, 12, dtype=torch.uint8))

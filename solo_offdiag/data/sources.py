"""Training sets as one in-memory uint8 tensor ``[N, C, H, W]`` plus integer targets.

The GPU data path decodes a dataset once and keeps it resident on the accelerator; these loaders
produce that tensor from in-memory arrays, torchvision's CIFAR-10/100 and STL-10, or an image
folder (decoded once, e.g. a small exported dataset). Unlabelled samples have target ``-1``, as in
torchvision's STL-10 ``unlabeled`` split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["InMemoryImages", "from_arrays", "load_dataset", "load_image_folder", "load_torchvision"]

#: solo-learn ``data.dataset`` names this module can load, and what they are.
TORCHVISION_SETS = ("cifar10", "cifar100", "stl10")


@dataclass(frozen=True)
class InMemoryImages:
    """``images``: uint8 ``[N, C, H, W]`` (contiguous); ``targets``: int64 ``[N]``."""

    images: Tensor
    targets: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor) or self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                "images: expected a uint8 tensor [N, C, H, W]; got "
                f"{getattr(self.images, 'dtype', type(self.images).__name__)} "
                f"of shape {tuple(getattr(self.images, 'shape', ()))}"
            )
        if self.targets.ndim != 1 or self.targets.shape[0] != self.images.shape[0]:
            raise ValueError(
                f"targets: expected shape ({self.images.shape[0]},); got {tuple(self.targets.shape)}"
            )
        if self.targets.dtype != torch.int64:
            raise ValueError(f"targets: expected int64; got {self.targets.dtype}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def nbytes(self) -> int:
        return self.images.numel() + 8 * self.targets.numel()


def from_arrays(images: Any, targets: Any = None, *, layout: str = "auto") -> InMemoryImages:
    """Wrap uint8 images (numpy or torch; ``NHWC`` or ``NCHW``) and optional targets.

    ``layout="auto"`` takes ``NHWC`` when the last axis has 1 or 3 entries and the second does not.
    """
    array = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    if array.dtype != torch.uint8:
        raise ValueError(f"images: expected uint8 values 0..255; got {array.dtype}")
    if array.ndim == 3:  # [N, H, W] grey
        array = array[:, None]
        layout = "NCHW"
    if array.ndim != 4:
        raise ValueError(f"images: expected 4 dimensions (N, H, W, C or N, C, H, W); got shape {tuple(array.shape)}")
    if layout == "auto":
        layout = "NHWC" if array.shape[-1] in (1, 3) and array.shape[1] not in (1, 3) else "NCHW"
    if layout == "NHWC":
        array = array.permute(0, 3, 1, 2)
    elif layout != "NCHW":
        raise ValueError(f"layout: got {layout!r}; allowed: 'auto', 'NHWC', 'NCHW'")
    if targets is None:
        target_tensor = torch.full((array.shape[0],), -1, dtype=torch.int64)
    else:
        target_tensor = torch.as_tensor(np.asarray(targets), dtype=torch.int64).reshape(-1)
    return InMemoryImages(array.contiguous(), target_tensor)


def load_torchvision(
    name: str, root: str | os.PathLike[str], *, download: bool = False, split: str | None = None
) -> InMemoryImages:
    """CIFAR-10/100 (``train``) or STL-10 (``train+unlabeled`` by default, as solo-learn)."""
    import torchvision

    if name in ("cifar10", "cifar100"):
        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        train = split in (None, "train")
        if split not in (None, "train", "test"):
            raise ValueError(f"split: got {split!r} for {name}; allowed: 'train', 'test'")
        ds = cls(os.fspath(root), train=train, download=download)
        return from_arrays(ds.data, ds.targets, layout="NHWC")
    if name == "stl10":
        ds = torchvision.datasets.STL10(os.fspath(root), split=split or "train+unlabeled", download=download)
        return from_arrays(ds.data, ds.labels, layout="NCHW")
    raise ValueError(f"dataset: got {name!r}; torchvision sets allowed: {', '.join(TORCHVISION_SETS)}")


def load_image_folder(
    root: str | os.PathLike[str], *, image_size: int | None = None, extensions: Sequence[str] | None = None
) -> InMemoryImages:
    """Decode an ``ImageFolder`` tree (``root/class/xxx.png``) once into memory, RGB.

    With ``image_size`` each image's short side is resized to it (bicubic) and centre-cropped to a
    square; without it every image must already have the same size.
    """
    from PIL import Image
    from torchvision.datasets import ImageFolder

    kwargs: dict[str, Any] = {}
    if extensions is not None:
        kwargs["extensions"] = tuple(extensions)
    folder = ImageFolder(os.fspath(root), **kwargs)
    if len(folder) == 0:
        raise ValueError(f"no images found under {root}")
    arrays, size = [], None
    for path, _ in folder.samples:
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                if image_size is not None:
                    im = _short_side_centre_crop(im, image_size)
                array = np.asarray(im, dtype=np.uint8)
        except OSError as err:  # PIL's UnidentifiedImageError and truncated files
            raise ValueError(f"{path}: cannot read this image ({type(err).__name__}: {err}); "
                             "remove or replace the file") from None
        if size is None:
            size = array.shape
        elif array.shape != size:
            raise ValueError(
                f"{path}: size {array.shape[1]}x{array.shape[0]} differs from the first image's "
                f"{size[1]}x{size[0]}; pass image_size to resize every image"
            )
        arrays.append(array)
    return from_arrays(np.stack(arrays), [t for _, t in folder.samples], layout="NHWC")


def _short_side_centre_crop(im: Any, size: int) -> Any:
    from PIL import Image

    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def load_dataset(
    dataset: str,
    root: str | os.PathLike[str] | None,
    *,
    download: bool = False,
    image_size: int | None = None,
) -> InMemoryImages:
    """Load a solo-learn ``data.dataset`` by name: torchvision sets, or an image folder for the rest.

    ``root`` is solo's ``data.train_path`` (for torchvision sets, the download directory).
    """
    if root is None:
        raise ValueError(f"data.train_path: got None; the GPU data path needs the {dataset!r} location")
    if dataset in TORCHVISION_SETS:
        return load_torchvision(dataset, root, download=download)
    if not Path(root).is_dir():
        raise ValueError(f"data.train_path: {os.fspath(root)!r} is not a directory")
    return load_image_folder(root, image_size=image_size)

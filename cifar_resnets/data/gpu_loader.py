"""GPU-resident batch iterator with batched on-device augmentation (works on CPU tensors too).

Small CIFAR nets are launch-bound, so the split lives on the device as one uint8 tensor and crop + flip
cost one gather (the reflect padding folded into its indices) plus the normalisation: no workers, no
per-sample Python. Every draw comes from a generator seeded with (seed, epoch[, rank[, batch]]), so a
run resumed at batch b gets exactly the batches of the uninterrupted run without replaying 0..b-1, each
DDP rank takes its own shard, scalars come from numpy (no device sync), and the global RNGs are untouched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from cifar_resnets.data.transforms import AugmentSpec, photometric_transforms, to_input_size

# Photometric v2 transforms sample one set of parameters per call. On the device path they are applied
# per group of this many images, so a batch of 128 gets 8 different rotations/jitters/perspectives.
DEFAULT_AUG_GROUP = 16


def _mix_seed(*parts: int) -> int:
    """Deterministic 63-bit seed from integers (SeedSequence hashes them well, unlike a sum)."""
    return int(
        np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts])
        .generate_state(2, np.uint32)
        .view(np.uint64)[0]
        >> 1
    )


class _EpochSampler:
    """What Lightning looks for: it calls `loader.sampler.set_epoch(epoch)` at every epoch start."""

    def __init__(self, loader: GPUBatchLoader):
        self._loader = loader

    def set_epoch(self, epoch: int) -> None:
        self._loader.set_epoch(epoch)


class GPUBatchLoader:
    """Iterable of `(x, y)` batches from a uint8 image tensor kept on `device`.

    x: float32 [B, 3, H, W] normalized (channels_last when asked); y: int64 [B], or float [B, C] soft
    targets when mixup/cutmix is on. Training loaders shuffle and augment and drop the last partial batch;
    eval loaders keep a fixed order, no augmentation, and keep the last partial batch.
    """

    def __init__(
        self,
        images_uint8: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray | Sequence[int],
        batch_size: int,
        *,
        train: bool,
        mean: Sequence[float],
        std: Sequence[float],
        seed: int = 0,
        augment: AugmentSpec | dict | None = None,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = True,
        drop_last: bool | None = None,
        num_classes: int | None = None,
        aug_group_size: int = DEFAULT_AUG_GROUP,
        image_size: int | None = None,
    ):
        images = torch.as_tensor(images_uint8)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = torch.as_tensor(labels, dtype=torch.int64).to(self.device)
        if self.labels.shape != (images.shape[0],):
            raise ValueError(f"{self.labels.shape[0]} labels for {images.shape[0]} images")
        self.batch_size = int(batch_size)
        self.train = bool(train)
        self.drop_last = self.train if drop_last is None else bool(drop_last)
        self.seed = int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.channels_last = channels_last
        self.spec = AugmentSpec.from_config(augment) if train else AugmentSpec(crop_padding=0, flip=False)
        if self.spec.crop_padding >= min(images.shape[-2:]):
            raise ValueError(
                f"augment.crop_padding={self.spec.crop_padding} must be smaller than the "
                f"{images.shape[-2]}x{images.shape[-1]} images (the padding reflects them)"
            )
        self.num_classes = num_classes
        if self.train and self.spec.mixes and not num_classes:
            raise ValueError("mixup/cutmix need num_classes for the soft targets")
        self.aug_group_size = max(1, int(aug_group_size))
        if image_size is not None and int(image_size) < 1:
            raise ValueError(f"image_size must be >= 1 or None, got {image_size}")
        # The stored size itself means no resize, so the plain recipe keeps its 3-kernel batch.
        native = images.shape[-2] == images.shape[-1] == image_size
        self.image_size = None if image_size is None or native else int(image_size)
        self._photometric = photometric_transforms(self.spec) if self.train else []
        # Fold x/255 and (x - mean)/std into one subtract and one multiply on uint8-valued floats.
        self._shift = torch.tensor([255.0 * m for m in mean], device=self.device).view(1, 3, 1, 1)
        self._scale = torch.tensor([1.0 / (255.0 * s) for s in std], device=self.device).view(1, 3, 1, 1)
        self.sampler = _EpochSampler(self)
        self.batch_sampler = None  # Lightning reads it whenever `sampler` exists (DataLoader duck typing)
        self.epoch = 0
        self._yielded = 0  # batches yielded in the current epoch (for state_dict)
        self._resume_at: tuple[int, int] | None = None  # (epoch, batch) set by load_state_dict

    # ----- length and epoch bookkeeping -----
    @property
    def num_samples(self) -> int:
        """Images this rank sees per epoch (equal on all ranks)."""
        n = self.images.shape[0]
        if self.world_size == 1:
            return n
        # Training drops the remainder so shards are disjoint; eval pads by wrapping, as DistributedSampler
        # (equal lengths on all ranks keep collective ops in step)
        return n // self.world_size if self.drop_last else math.ceil(n / self.world_size)

    def __len__(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation and augmentations the next `__iter__` uses."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, int]:
        """Position within the epoch: resuming continues at the next batch, not at
        the start of the epoch, so a mid-epoch checkpoint resumes exactly."""
        return {"epoch": self.epoch, "batches_yielded": self._yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Called by Lightning before the iterator is created; applied by the next `__iter__`."""
        self.epoch = int(state["epoch"])
        self._resume_at = (self.epoch, int(state["batches_yielded"]))

    # ----- iteration -----
    def _indices(self) -> torch.Tensor:
        n = self.images.shape[0]
        if self.train:
            g = torch.Generator(device=self.device)
            g.manual_seed(_mix_seed(self.seed, self.epoch, 0))
            order = torch.randperm(n, generator=g, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        if self.world_size == 1:
            return order
        per = self.num_samples
        if not self.drop_last and per * self.world_size > n:
            order = order.repeat(math.ceil(per * self.world_size / n))[: per * self.world_size]
        return order[self.rank * per : (self.rank + 1) * per]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start = 0
        if self._resume_at is not None and self._resume_at[0] == self.epoch:
            start = self._resume_at[1]
        self._resume_at = None
        self._yielded = start
        order = self._indices()
        crops = self._epoch_crops(order.shape[0])
        for b in range(start, len(self)):
            positions = slice(b * self.batch_size, (b + 1) * self.batch_size)
            batch_crops = None if crops is None else (crops[0][positions], crops[1][positions])
            batch = self.make_batch(order[positions], b, batch_crops)
            self._yielded = b + 1
            yield batch

    def _epoch_crops(self, n: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Source rows [n, H] and columns [n, W] of every crop/flip of this epoch (None: no crop/flip)."""
        if not self.train or (self.spec.crop_padding == 0 and not self.spec.flip):
            return None
        g = torch.Generator(device=self.device)
        g.manual_seed(_mix_seed(self.seed, self.epoch, self.rank, 2))
        h, w = self.images.shape[-2:]
        return crop_flip_indices(n, h, w, self.spec.crop_padding, self.spec.flip, g)

    def make_batch(
        self,
        idx: torch.Tensor,
        batch_index: int,
        crops: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather, augment and normalize the images at `idx` (batch `batch_index` of the epoch), cropped
        and flipped by `crops` (rows, columns from `crop_flip_indices`) when given."""
        y = self.labels[idx]
        if not self.train:
            return self._normalize(to_input_size(self.images[idx], self.image_size)), y
        x = self.images[idx] if crops is None else gather_crops(self.images, idx, *crops)
        if not self._photometric and not self.spec.mixes and self.image_size is None:
            return self._normalize(x), y  # the plain CIFAR recipe: uint8 in, normalized floats out
        seed = _mix_seed(self.seed, self.epoch, self.rank, batch_index, 1)
        x = x.float()
        if self._photometric:
            x = self._apply_photometric(x, seed)
        x = self._normalize(resize(x, self.image_size))
        if self.spec.mixes:
            x, y = mix_batch(x, y, self.num_classes, self.spec, np.random.default_rng(seed))
        return x, y

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self._shift) * self._scale  # uint8 or float in, float32 out (type promotion)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

    def _apply_photometric(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        """v2 rotation/colour jitter/perspective on the device, one parameter draw per image group.

        v2 transforms draw their parameters from the global CPU RNG and apply one draw to a whole batch;
        forking the CPU RNG and seeding it per batch keeps runs resumable and leaves the global RNG alone.
        """
        x = x / 255.0
        groups = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for part in x.split(self.aug_group_size):
                for t in self._photometric:
                    part = t(part)
                groups.append(part)
        return torch.cat(groups).clamp_(0, 1) * 255.0


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Batched bilinear resize to `size` x `size` (no antialiasing; a no-op at the current size).

    Runs after crop/flip/photometric so those work on the small images; being linear, it commutes with
    the per-channel normalization that follows.
    """
    if size is None or x.shape[-2:] == (size, size):
        return x
    return torch.nn.functional.interpolate(
        x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=False
    )


def crop_flip_indices(
    n: int, h: int, w: int, padding: int, flip: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source rows [n, h] and columns [n, w] of n random crops of the `padding`-reflect-padded image,
    half of them flipped horizontally, as indices into the unpadded image.

    A crop at offset d reads padded rows d .. d+h-1, i.e. image rows d-padding .. d-padding+h-1, with
    reflection (-1 -> 1, h -> h-2) where they fall outside; a flipped crop reads its columns backwards.
    """
    if padding >= min(h, w):
        raise ValueError(f"crop padding {padding} must be smaller than the image ({h}x{w}) to reflect")
    dev = generator.device
    dy = torch.randint(0, 2 * padding + 1, (n, 1), device=dev, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), device=dev, generator=generator)
    rows = _reflect(dy - padding + torch.arange(h, device=dev), h)
    ar_w = torch.arange(w, device=dev)
    if flip:
        flipped = torch.rand(n, 1, device=dev, generator=generator) < 0.5
        ar_w = torch.where(flipped, w - 1 - ar_w, ar_w)
    cols = _reflect(dx - padding + ar_w, w)
    return rows, cols


def _reflect(i: torch.Tensor, size: int) -> torch.Tensor:
    """Index into [0, size) of position i of a reflect-padded axis (edge pixels not repeated)."""
    return (size - 1) - ((size - 1) - i.abs()).abs()


def gather_crops(
    images: torch.Tensor, idx: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """images[idx] cropped to `rows` x `cols` per image, in one gather; [B, C, H, W], NHWC in memory.

    The indexed dimensions come first in the result ([B, H, W, C]); the permute makes it NCHW with
    channels_last strides, what the nets want on the GPU.
    """
    out = images[idx[:, None, None], :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def mix_batch(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, spec: AugmentSpec, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix (or neither) on a device batch; y becomes soft targets [B, C] summing to 1.

    Written as batched tensor ops instead of torchvision's v2.MixUp/v2.CutMix because those draw lambda
    and the box from the global torch RNG; here the scalars come from `rng` (seeded per batch), which
    keeps resumed runs identical. Like torchvision, the partner of image i is image i-1 (a roll), with one
    lambda per batch.
    """
    target = torch.nn.functional.one_hot(y, num_classes).to(x.dtype)
    p_mixup, p_cutmix = spec.effective_mix_probs
    u = rng.random()
    if u < p_mixup:
        lam = float(rng.beta(spec.mixup_alpha, spec.mixup_alpha))
        x = x.mul(lam).add_(x.roll(1, 0), alpha=1.0 - lam)
    elif u < p_mixup + p_cutmix:
        lam = float(rng.beta(spec.cutmix_alpha, spec.cutmix_alpha))
        h, w = x.shape[-2:]
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        rh, rw = int(h * math.sqrt(1 - lam) / 2), int(w * math.sqrt(1 - lam) / 2)
        y1, y2, x1, x2 = max(cy - rh, 0), min(cy + rh, h), max(cx - rw, 0), min(cx + rw, w)
        x = x.clone()
        x[:, :, y1:y2, x1:x2] = x.roll(1, 0)[:, :, y1:y2, x1:x2]
        lam = 1.0 - (y2 - y1) * (x2 - x1) / (h * w)
    else:
        return x, target
    return x, target.mul(lam).add_(target.roll(1, 0), alpha=1.0 - lam)

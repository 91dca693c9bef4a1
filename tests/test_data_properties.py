"""Property tests: on-device augmentation shapes/ranges/crop bounds, and the reader on mutated files."""

from __future__ import annotations

import pickle

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cifar_resnets.data.cifar_files import load_cifar_pickle
from cifar_resnets.data.gpu_loader import GPUBatchLoader, crop_flip_indices, gather_crops
from cifar_resnets.errors import DataError

SETTINGS = settings(max_examples=30, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    b=st.integers(1, 6),
    h=st.integers(6, 24),
    w=st.integers(6, 24),
    padding=st.integers(0, 5),
    flip=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_crop_flip_shapes_and_bounds(b, h, w, padding, flip, seed):
    # pixel value = column index: every output row must be a run of consecutive padded columns
    cols = torch.arange(w, dtype=torch.uint8).view(1, 1, 1, w).expand(b, 3, h, w).contiguous()
    g = torch.Generator().manual_seed(seed)
    rows, src_cols = crop_flip_indices(b, h, w, padding, flip, g)  # what the loader does per epoch
    out = gather_crops(cols, torch.arange(b), rows, src_cols).float()
    assert out.shape == (b, 3, h, w) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= w - 1
    padded = (
        torch.nn.functional.pad(cols.float(), (padding,) * 4, mode="reflect") if padding else cols.float()
    )
    row = padded[0, 0, 0]
    windows = {tuple(row[d : d + w].tolist()) for d in range(2 * padding + 1)}
    windows |= {tuple(reversed(v)) for v in windows} if flip else set()
    for img in out:
        assert tuple(img[0, 0].tolist()) in windows


@SETTINGS
@given(
    n=st.integers(1, 40),
    batch=st.integers(1, 16),
    train=st.booleans(),
    world=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_loader_batches_shapes_and_ranges(n, batch, train, world, seed):
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(n)
    total = 0
    for rank in range(world):
        ld = GPUBatchLoader(
            images, labels, batch, train=train, mean=(0.5,) * 3, std=(0.25,) * 3, seed=seed,
            rank=rank, world_size=world,
        )  # fmt: skip
        for x, y in ld:
            assert x.shape[1:] == (3, 8, 8) and x.shape[0] == y.shape[0] <= batch
            assert x.min() >= -2 - 1e-5 and x.max() <= 2 + 1e-5  # (0..1 - 0.5) / 0.25
            assert ((y >= 0) & (y < n)).all()
            total += y.numel()
        assert len(ld) == (ld.num_samples // batch if train else -(-ld.num_samples // batch))
    expected_per_rank = n // world if train else -(-n // world)
    assert total <= world * expected_per_rank


def _valid_batch(rng: np.random.Generator) -> bytes:
    n = int(rng.integers(1, 5))
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    batch = {b"batch_label": b"x", b"labels": labels, b"data": data}
    return pickle.dumps(batch, protocol=int(rng.integers(2, 6)))


@settings(max_examples=40, deadline=3000)
@given(
    seed=st.integers(0, 2**32 - 1),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6),
)
def test_reader_on_mutated_files_fails_cleanly_or_reads(tmp_path_factory, seed, cut, flips):
    raw = bytearray(_valid_batch(np.random.default_rng(seed)))
    for where, value in flips:
        raw[min(int(where * len(raw)), len(raw) - 1)] = value
    raw = raw[: max(1, int(len(raw) * (0.5 + cut / 2)))] if cut < 0.5 else raw
    path = tmp_path_factory.mktemp("mutated") / "batch"
    path.write_bytes(bytes(raw))
    try:
        images, labels = load_cifar_pickle(path, num_classes=10)
    except DataError:
        return
    assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32)
    assert labels is None or (labels.shape == (images.shape[0],) and labels.min() >= 0 and labels.max() < 10)


@settings(max_examples=20, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 24),
    batch=st.integers(2, 8),
    padding=st.integers(0, 4),
    rotation=st.sampled_from([0.0, 15.0]),
    jitter=st.sampled_from([0.0, 0.4]),
    mixup_prob=st.floats(0, 1),
    cutmix_prob=st.floats(0, 1),
    seed=st.integers(0, 1000),
)
def test_full_augmentation_shapes_ranges_and_soft_targets(
    n, batch, padding, rotation, jitter, mixup_prob, cutmix_prob, seed
):
    """Every augmentation on: images stay in the normalized 0..255 range, soft targets are distributions."""
    total = mixup_prob + cutmix_prob
    if total > 1:
        mixup_prob, cutmix_prob = mixup_prob / total, cutmix_prob / total
    augment = {
        "crop_padding": padding,
        "rotation": rotation,
        "color_jitter": jitter,
        "mixup_alpha": 0.2,
        "mixup_prob": mixup_prob,
        "cutmix_alpha": 1.0,
        "cutmix_prob": cutmix_prob,
    }
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8)
    loader = GPUBatchLoader(
        images, torch.arange(n) % 5, batch, train=True, mean=(0.5,) * 3, std=(0.25,) * 3, seed=seed,
        augment=augment, num_classes=5, aug_group_size=4,
    )  # fmt: skip
    for x, y in loader:
        assert x.shape == (y.shape[0], 3, 8, 8) and x.dtype == torch.float32
        assert torch.isfinite(x).all() and x.min() >= -2 - 1e-4 and x.max() <= 2 + 1e-4
        if not loader.spec.mixes:  # no mixing configured: plain class indices
            assert y.shape == (x.shape[0],) and y.dtype == torch.int64
            continue
        assert y.shape == (x.shape[0], 5) and (y >= -1e-6).all()
        assert torch.allclose(y.sum(dim=1), torch.ones(y.shape[0]), atol=1e-5)

"""The ``reference`` path: the plain PyTorch reference loop, as the reimplementations the suite
reproduces train (DataLoader + PIL), the baseline cifar-train's speed is compared with.

A torchvision-style Dataset whose PIL transforms run per image in DataLoader workers, fp32, plain SGD
with He et al.'s settings; the same images and the same net as the ``cifar-train`` path. Nothing of
the suite's training code runs here, so the ratio between the two is what the suite's data path,
precision and step recording buy on this device.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cifar_resnets.bench.device import peak_memory_mib, reset_peak_memory, sync, training_device
from cifar_resnets.bench.results import Result
from cifar_resnets.config.compose import compose_train
from cifar_resnets.errors import ConfigError


def reference_path(root: Path, model: str, batch_size: int, steps: int, warmup: int, workers: int) -> Result:
    """``steps`` timed steps of the reference loop after ``warmup`` untimed ones."""
    import torchvision.transforms as T
    from PIL import Image

    from cifar_resnets.data.cifar import CIFARDataModule
    from cifar_resnets.training.build import build_net

    dm = CIFARDataModule(root=str(root), val_size=0)
    images, labels = (t.numpy() for t in dm.train_arrays())
    if images.shape[0] < batch_size:
        raise ConfigError(f"batch size {batch_size} is larger than the {images.shape[0]} training images")
    tf = T.Compose(
        [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(dm.mean, dm.std)]
    )

    class PILDataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, i: int):
            return tf(Image.fromarray(images[i].transpose(1, 2, 0))), int(labels[i])

    device = training_device()
    loader = torch.utils.data.DataLoader(
        PILDataset(),
        batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=workers > 0,
    )
    net = build_net(compose_train([f"model={model}"]).model, dm.num_classes).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    reset_peak_memory()
    it, t0 = iter(loader), 0.0
    for k in range(warmup + steps):
        if k == warmup:
            sync()
            t0 = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        loss = F.cross_entropy(net(x.to(device, non_blocking=True)), y.to(device, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    seconds = time.perf_counter() - t0
    return Result(
        model, batch_size, "reference", steps * batch_size / seconds, steps, seconds, peak_memory_mib(),
        "32-true", f"DataLoader + PIL, {workers} workers",
    )  # fmt: skip

"""The ``seed`` path: the training loop of the seed projects, as the baseline every speed-up is
measured against: a torchvision-style Dataset whose PIL transforms run per image in DataLoader
workers, fp32, and a plain SGD loop. Same images and the same net as the suite's paths."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cifar_resnets.bench.device import peak_memory_mib, reset_peak_memory, sync, training_device
from cifar_resnets.bench.results import BenchError, Result
from cifar_resnets.config.compose import compose_train


def _train_arrays(root: Path) -> tuple[np.ndarray, np.ndarray]:
    from cifar_resnets.data.cifar import CIFARDataModule

    dm = CIFARDataModule(root=str(root), val_size=0)
    dm.setup("fit")
    images, labels = dm.train_arrays()
    return images.numpy(), labels.numpy()


def seed_path(root: Path, model: str, batch_size: int, steps: int, warmup: int, workers: int) -> Result:
    """The seed projects' loop: PIL transforms per image in DataLoader workers, fp32."""
    import torchvision.transforms as T
    from PIL import Image

    from cifar_resnets.training.build import build_net

    images, labels = _train_arrays(root)
    if images.shape[0] < batch_size:
        raise BenchError(f"batch size {batch_size} is larger than the {images.shape[0]} training images")
    tf = T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        ]
    )

    class SeedStyleDataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, i: int):
            return tf(Image.fromarray(images[i].transpose(1, 2, 0))), int(labels[i])

    device = training_device()
    loader = torch.utils.data.DataLoader(
        SeedStyleDataset(),
        batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=workers > 0,
    )
    cfg = compose_train([f"model={model}"])
    net = build_net(cfg.model, 10).to(device)
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
        model, batch_size, "seed", steps * batch_size / seconds, steps, seconds, peak_memory_mib(), "32-true",
        f"{workers} workers",
    )  # fmt: skip

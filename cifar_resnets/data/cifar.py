"""CIFARDataModule: CIFAR-10/100 with a fixed validation split and two loader paths.

``loader="auto"`` picks the batched ``gpu_loader`` on every device: on a CPU too it is the faster, and its
position in an epoch is saved in checkpoints, so a run killed mid-epoch resumes to the same weights
(docs/speed.md, docs/reliability.md). ``loader="cpu"`` is a torch DataLoader with per-sample v2 transforms.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cifar_resnets.data.cifar_files import CIFAR_SPECS, check_class_ids, cifar_splits
from cifar_resnets.data.gpu_loader import GPUBatchLoader
from cifar_resnets.data.transforms import AugmentSpec, MixCollate, cifar_train_transform, eval_transform
from cifar_resnets.errors import ConfigError

# Per-channel mean/std of the training images on a 0-1 scale (the usual published values).
CIFAR_STATS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
LOADERS = ("auto", "gpu", "cpu")
__all__ = ["CIFAR_STATS", "CIFARDataModule", "EpochSeededSampler", "UInt8ImageDataset"]


class UInt8ImageDataset(Dataset):
    """Map-style dataset over uint8 [N, 3, H, W] images for the CPU DataLoader path."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


class EpochSeededSampler(Sampler[int]):
    """A shuffle whose order depends only on (seed, epoch).

    A ``RandomSampler`` with a generator advances that generator every epoch, so a run resumed at
    epoch k would replay epoch 0's order; Lightning calls ``set_epoch`` before each epoch.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


class CIFARDataModule(L.LightningDataModule):
    """CIFAR-10/100 datamodule following the project's datamodule contract (see module docstring)."""

    def __init__(
        self,
        name: str = "cifar10",
        root: str = "data",
        classes: list[int] | None = None,
        image_size: int = 32,
        download: bool = False,
        val_size: int = 5000,
        num_train: int | None = None,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        loader: str = "auto",
        num_workers: int = 0,
        split_seed: int = 0,
        seed: int = 0,
        augment: dict[str, Any] | AugmentSpec | None = None,
    ):
        super().__init__()
        if name not in CIFAR_SPECS:
            raise ConfigError(f"data.name={name!r} is not supported; choose one of {sorted(CIFAR_SPECS)}")
        if loader not in LOADERS:
            raise ConfigError(f"data.loader={loader!r} is not supported; choose one of {list(LOADERS)}")
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if int(value) < 1:
                raise ConfigError(f"data.{key} must be >= 1, got {value}")
        if val_size < 0 or (num_train is not None and num_train < 1):
            raise ConfigError("data.val_size must be >= 0 and data.num_train >= 1 (or null)")
        if num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {num_workers}")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
            raise ConfigError(f"data.image_size must be an integer >= 8 (32 = no resize), got {image_size!r}")
        self.name, self.root, self.download = name, str(root), bool(download)
        self.val_size, self.num_train = int(val_size), num_train
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size)
        self.loader, self.num_workers = loader, int(num_workers)
        self.split_seed, self.seed = int(split_seed), int(seed)
        self.augment = AugmentSpec.from_config(augment)
        spec = CIFAR_SPECS[name]
        self.image_size = int(image_size)
        self.class_ids = check_class_ids(classes, spec.num_classes, name)
        self.num_classes = len(self.class_ids) if self.class_ids is not None else spec.num_classes
        self.mean, self.std = CIFAR_STATS[name]
        self.classes: list[str] = []
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._device_splits: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}

    # ----- data -----
    def prepare_data(self) -> None:
        """Download once per node when asked (reading happens in `setup`, on every rank)."""
        if self.download:
            from cifar_resnets.data.cifar_files import ensure_cifar

            ensure_cifar(self.root, self.name, download=True)

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        splits = cifar_splits(
            self.root,
            self.name,
            self.class_ids,
            self.val_size,
            self.num_train,
            self.split_seed,
            self.download,
        )
        self.classes = splits.classes
        self._splits = {
            split: (torch.from_numpy(images), torch.from_numpy(labels))
            for split, (images, labels) in (
                ("train", splits.train),
                ("val", splits.val),
                ("test", splits.test),
            )
        }

    def _require(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._splits:
            self.setup()
        return self._splits[split]

    def train_arrays(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images [N, 3, 32, 32], int64 labels) of the training split, on the CPU."""
        return self._require("train")

    # ----- trainer context -----
    @property
    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    @property
    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    @property
    def use_gpu_loader(self) -> bool:
        return self.loader in ("auto", "gpu")

    @property
    def steps_per_epoch(self) -> int:
        """Training batches per epoch per rank (the last partial batch is dropped)."""
        n = self._require("train")[0].shape[0]
        rank_n = n // self._rank_world[1] if self.use_gpu_loader else math.ceil(n / self._rank_world[1])
        steps = rank_n // self.batch_size
        if steps == 0:
            raise ConfigError(
                f"data.batch_size={self.batch_size} is larger than the {rank_n} training images per rank; "
                "lower it or use more data"
            )
        return steps

    # ----- loaders -----
    def _on_device(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = (split, str(self._device))
        if key not in self._device_splits:
            images, labels = self._require(split)
            self._device_splits[key] = (images.to(self._device), labels.to(self._device))
        return self._device_splits[key]

    def _gpu_loader(self, split: str, train: bool):
        images, labels = self._on_device(split)
        rank, world = self._rank_world
        return GPUBatchLoader(
            images,
            labels,
            self.batch_size if train else self.eval_batch_size,
            train=train,
            mean=self.mean,
            std=self.std,
            seed=self.seed,
            augment=self.augment,
            device=self._device,
            rank=rank,
            world_size=world,
            num_classes=self.num_classes,
            image_size=self.image_size,
        )

    def _cpu_loader(self, split: str, train: bool) -> DataLoader:
        images, labels = self._require(split)
        resize = self.image_size if self.image_size != 32 else None
        transform = (
            cifar_train_transform(self.augment, self.mean, self.std, resize_to=resize)
            if train
            else eval_transform(self.mean, self.std, self.image_size)
        )
        collate = MixCollate(self.augment, self.num_classes) if train and self.augment.mixes else None
        return DataLoader(
            UInt8ImageDataset(images, labels, transform),
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=EpochSeededSampler(images.shape[0], self.seed) if train else None,
            # Workers' base seed comes from here, not from the global RNG, so how often Lightning
            # creates iterators (it differs between fresh and resumed runs) leaves that RNG alone.
            generator=torch.Generator().manual_seed(self.seed),
            drop_last=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self._device.type == "cuda",
            collate_fn=collate,
        )

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # The GPU-resident loader builds its batches on the device already; Lightning's default walks
        # the batch structure on every step to move each tensor, host time a launch-bound step lacks.
        if self.use_gpu_loader:
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def _make(self, split: str, train: bool):
        if train:
            self.steps_per_epoch  # noqa: B018 - raises a clear error when batch_size > training images
        return self._gpu_loader(split, train) if self.use_gpu_loader else self._cpu_loader(split, train)

    def train_dataloader(self):
        return self._make("train", train=True)

    def val_dataloader(self):
        if self._require("val")[0].shape[0] == 0:
            return []
        return self._make("val", train=False)

    def test_dataloader(self):
        return self._make("test", train=False)

    def teardown(self, stage: str | None = None) -> None:
        """Free device copies (the CPU arrays stay: a later fit or test reuses them)."""
        self._device_splits.clear()

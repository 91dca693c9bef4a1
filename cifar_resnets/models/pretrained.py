"""Published CIFAR ResNet weights, named ``pretrained:<source>/<net>``, mapped exactly onto ``CifarResNet``.

akamaster/pytorch_resnet_cifar10 (option-A shortcuts, padded on both sides of the old channels, so the
mapping permutes each stage's channels; the logits match to float rounding) and
chenyaofo/pytorch-cifar-models (option-B shortcuts). Files go through the torch hub cache and a
download is checked against the SHA-256 prefix in the release's file name.
"""

from __future__ import annotations

import re
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cifar_resnets.errors import ConfigError, DataError

if TYPE_CHECKING:  # torch loads when a file is read: the app lists the names before it needs torch
    import torch

__all__ = [
    "CLASS_NAMES",
    "PREFIX",
    "PretrainedNet",
    "find_release",
    "is_pretrained",
    "pretrained_names",
    "pretrained_net",
    "release_state",
]

PREFIX = "pretrained:"
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    # CIFAR-100's fine labels in the order of its meta file (alphabetical).
    "cifar100": (
        "apple",
        "aquarium_fish",
        "baby",
        "bear",
        "beaver",
        "bed",
        "bee",
        "beetle",
        "bicycle",
        "bottle",
        "bowl",
        "boy",
        "bridge",
        "bus",
        "butterfly",
        "camel",
        "can",
        "castle",
        "caterpillar",
        "cattle",
        "chair",
        "chimpanzee",
        "clock",
        "cloud",
        "cockroach",
        "couch",
        "crab",
        "crocodile",
        "cup",
        "dinosaur",
        "dolphin",
        "elephant",
        "flatfish",
        "forest",
        "fox",
        "girl",
        "hamster",
        "house",
        "kangaroo",
        "keyboard",
        "lamp",
        "lawn_mower",
        "leopard",
        "lion",
        "lizard",
        "lobster",
        "man",
        "maple_tree",
        "motorcycle",
        "mountain",
        "mouse",
        "mushroom",
        "oak_tree",
        "orange",
        "orchid",
        "otter",
        "palm_tree",
        "pear",
        "pickup_truck",
        "pine_tree",
        "plain",
        "plate",
        "poppy",
        "porcupine",
        "possum",
        "rabbit",
        "raccoon",
        "ray",
        "road",
        "rocket",
        "rose",
        "sea",
        "seal",
        "shark",
        "shrew",
        "skunk",
        "skyscraper",
        "snail",
        "snake",
        "spider",
        "squirrel",
        "streetcar",
        "sunflower",
        "sweet_pepper",
        "table",
        "tank",
        "telephone",
        "television",
        "tiger",
        "tractor",
        "train",
        "trout",
        "tulip",
        "turtle",
        "wardrobe",
        "whale",
        "willow_tree",
        "wolf",
        "woman",
        "worm",
    ),
}
_IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_CHENYAOFO_NORM = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5070, 0.4865, 0.4409), (0.2673, 0.2564, 0.2761)),
}
_HASH = re.compile(r"-([a-f0-9]{8,})\.")


@dataclass(frozen=True)
class PretrainedNet:
    """One published net: where it comes from, what its authors report, and how it maps onto CifarResNet."""

    source: str  # the project, e.g. "akamaster"
    net: str  # its name there, e.g. "resnet20" or "cifar100_resnet32"
    project: str  # owner/repository on GitHub
    url: str  # the release file; its name carries the start of the file's SHA-256
    license: str
    dataset: str  # cifar10 | cifar100
    depth: int
    shortcut: str  # "A" (zero-pad) or "B" (1x1 conv + BN projection), as CifarResNet names them
    published_accuracy: float  # top-1 % on the original test set, as the project publishes it
    published_where: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.source}/{self.net}"

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def num_classes(self) -> int:
        return len(CLASS_NAMES[self.dataset])

    def model_config(self) -> dict[str, Any]:
        """The ``model`` config of the suite's net these weights fit."""
        return {
            "_target_": "cifar_resnets.models.cifar_resnet.CifarResNet",
            "name": f"resnet{self.depth}",
            "depth": self.depth,
            "residual": True,
            "shortcut": self.shortcut,
        }

    def info(self) -> dict[str, Any]:
        """Provenance as plain values, for reports and cards."""
        return {
            "name": self.name,
            "project": f"https://github.com/{self.project}",
            "url": self.url,
            "license": self.license,
            "dataset": self.dataset,
            "published_accuracy": self.published_accuracy,
            "published_where": self.published_where,
        }


def _akamaster(depth: int, file_hash: str, error: float) -> PretrainedNet:
    return PretrainedNet(
        source="akamaster",
        net=f"resnet{depth}",
        project="akamaster/pytorch_resnet_cifar10",
        url=f"https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet{depth}-{file_hash}.th",
        license="BSD-2-Clause",
        dataset="cifar10",
        depth=depth,
        shortcut="A",
        published_accuracy=round(100 - error, 2),
        published_where=f"README table, test error {error:.2f}% (this implementation)",
        mean=_IMAGENET_NORM[0],
        std=_IMAGENET_NORM[1],
    )


def _chenyaofo(dataset: str, depth: int, file_hash: str, accuracy: float) -> PretrainedNet:
    return PretrainedNet(
        source="chenyaofo",
        net=f"{dataset}_resnet{depth}",
        project="chenyaofo/pytorch-cifar-models",
        url=f"https://github.com/chenyaofo/pytorch-cifar-models/releases/download/resnet/{dataset}_resnet{depth}-{file_hash}.pt",
        license="BSD-3-Clause",
        dataset=dataset,
        depth=depth,
        shortcut="B",
        published_accuracy=accuracy,
        published_where="README model zoo, top-1",
        mean=_CHENYAOFO_NORM[dataset][0],
        std=_CHENYAOFO_NORM[dataset][1],
    )


_RELEASES = (
    # akamaster/pytorch_resnet_cifar10 README (commit d5489e8): test error of its own weights.
    _akamaster(20, "12fca82f", 8.27),
    _akamaster(32, "d509ac18", 7.37),
    _akamaster(44, "014dd654", 6.90),
    _akamaster(56, "4bfd9763", 6.61),
    _akamaster(110, "1d1ed7c2", 6.32),
    _akamaster(1202, "f3b1deed", 6.18),
    # chenyaofo/pytorch-cifar-models README (commit 786c162) and pytorch_cifar_models/resnet.py.
    _chenyaofo("cifar10", 20, "4118986f", 92.60),
    _chenyaofo("cifar10", 32, "ef93fc4d", 93.53),
    _chenyaofo("cifar10", 44, "2a3cabcb", 94.01),
    _chenyaofo("cifar10", 56, "187c023a", 94.37),
    _chenyaofo("cifar100", 20, "23dac2f1", 68.83),
    _chenyaofo("cifar100", 32, "84213ce6", 70.16),
    _chenyaofo("cifar100", 44, "ffe32858", 71.63),
    _chenyaofo("cifar100", 56, "f2eff4c8", 72.63),
)
_BY_NAME = {release.name: release for release in _RELEASES}
_BY_FILE = {release.file_name: release for release in _RELEASES}


def pretrained_names() -> list[str]:
    """Every published net's full name, e.g. ``pretrained:akamaster/resnet20``."""
    return list(_BY_NAME)


def is_pretrained(text: str | Path) -> bool:
    """A pretrained name, or the path of a release file (told by its file name)."""
    text = str(text)
    return text.startswith(PREFIX) or Path(text).name in _BY_FILE


def pretrained_net(name: str) -> PretrainedNet:
    """The release a full name denotes; an unknown name lists the known ones."""
    release = _BY_NAME.get(str(name))
    if release is None:
        raise ConfigError(f"unknown pretrained net {name!r}; choose one of {', '.join(_BY_NAME)}")
    return release


def find_release(name_or_path: str | Path) -> tuple[PretrainedNet, Path]:
    """(release, local file) of a pretrained name (the hub cache, downloaded when missing) or a release
    file's path."""
    text = str(name_or_path)
    if text.startswith(PREFIX):
        release = pretrained_net(text)
        return release, _cached_file(release)
    path = Path(text).expanduser()
    release = _BY_FILE.get(path.name)
    if release is None:
        raise ConfigError(f"{path} is not a known release file; pass one of {', '.join(_BY_FILE)}")
    if not path.is_file():
        raise DataError(f"{path} does not exist; download it from {release.url}")
    return release, path


def cache_path(release: PretrainedNet) -> Path:
    """Where the torch hub cache keeps the release file (``torch.hub.get_dir()/checkpoints``)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / release.file_name


def _cached_file(release: PretrainedNet) -> Path:
    import torch

    target = cache_path(release)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Writes a temporary file beside the target and renames it only once its SHA-256 matches.
        torch.hub.download_url_to_file(release.url, str(target), _HASH.search(release.file_name).group(1))
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(
            f"cannot download {release.url} ({reason}); offline, put that file at {target}"
        ) from None
    except RuntimeError as err:  # torch.hub: the download's SHA-256 does not start with the name's hash
        raise DataError(f"{release.url}: the downloaded file is not the release ({err})") from None
    return target


def _read(release: PretrainedNet, path: Path) -> dict[str, torch.Tensor]:
    import torch

    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to read means a damaged or foreign copy
        raise DataError(
            f"{path} is not a readable copy of {release.url} ({str(err).strip().splitlines()[0][:120]}); "
            "delete it and load the name again"
        ) from None
    if isinstance(content, dict) and isinstance(content.get("state_dict"), dict):
        content = content["state_dict"]
    if not isinstance(content, dict) or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise DataError(f"{path} holds no state dict of tensors; download it again from {release.url}")
    return {k.removeprefix("module."): v for k, v in content.items()}


def _stream_orders(widths: tuple[int, ...]) -> list[torch.Tensor]:
    """For each stage, which of akamaster's channels each of the suite's residual-stream channels holds.

    Both pass the previous stage's channels on unchanged and fill the rest with zeros: akamaster puts the
    zeros on both sides (``planes // 4`` each), the suite after them.
    """
    import torch

    orders = [torch.arange(widths[0])]
    for width in widths[1:]:
        previous = orders[-1]
        pad = width // 4
        zeros = [c for c in range(width) if c < pad or c >= pad + previous.numel()]
        orders.append(torch.cat([previous + pad, torch.tensor(zeros, dtype=torch.long)]))
    return orders


def _from_akamaster(state: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    blocks = (depth - 2) // 6
    orders = _stream_orders((16, 32, 64))
    out = {k: v for k, v in state.items() if not k.startswith(("layer", "linear."))}
    for stage in range(3):
        for block in range(blocks):
            prefix = f"layer{stage + 1}.{block}."
            order_in = orders[stage - 1] if stage > 0 and block == 0 else orders[stage]
            order_out = orders[stage]
            for key, value in state.items():
                if not key.startswith(prefix):
                    continue
                part = key[len(prefix) :]
                if part == "conv1.weight":
                    value = value[:, order_in]
                elif part == "conv2.weight" or (part.startswith("bn2.") and value.ndim == 1):
                    value = value[order_out]
                out[key] = value.contiguous()
    out["fc.weight"] = state["linear.weight"][:, orders[-1]].contiguous()
    out["fc.bias"] = state["linear.bias"]
    return out


def _from_chenyaofo(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.replace(".downsample.", ".shortcut."): v for k, v in state.items()}


def release_state(name_or_path: str | Path) -> tuple[PretrainedNet, dict[str, torch.Tensor]]:
    """(release, state dict in the keys and channel order of ``release.model_config()``'s net)."""
    import torch

    release, path = find_release(name_or_path)
    state = _read(release, path)
    # Releases saved before torch 0.4.1 carry no BatchNorm step counters (read only by momentum=None BNs).
    for key in [k for k in state if k.endswith(".running_mean")]:
        state.setdefault(key.replace(".running_mean", ".num_batches_tracked"), torch.tensor(0))
    try:
        if release.source == "akamaster":
            return release, _from_akamaster(state, release.depth)
        return release, _from_chenyaofo(state)
    except (KeyError, IndexError) as err:
        raise DataError(
            f"{path} does not hold the layout of {release.name} (no {err}); "
            f"download it again from {release.url}"
        ) from None

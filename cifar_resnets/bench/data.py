"""The images every path reads: the user's CIFAR-10 copy, or synthetic files in the same format."""

from __future__ import annotations

from pathlib import Path

from cifar_resnets.errors import ConfigError


def prepare_data(data_root: str | None, synthetic_train: int, workdir: Path) -> tuple[Path, str]:
    """The data root to read and a description of it (synthetic files when no root is given)."""
    if data_root:
        root = Path(data_root)
        if not (root / "cifar-10-batches-py").is_dir():
            raise ConfigError(
                f"--data-root {root} holds no cifar-10-batches-py folder; write one with "
                "cifar10_from_jpeg.py or leave --data-root out for synthetic data"
            )
        return root, f"real CIFAR-10 at {root}"
    from cifar_resnets.data.synthetic import write_synthetic_cifar

    root = workdir / "synthetic"
    write_synthetic_cifar(root, "cifar10", num_train=synthetic_train, num_test=max(256, synthetic_train // 5))
    return root, f"SYNTHETIC CIFAR-10-format data ({synthetic_train} train images; no --data-root given)"

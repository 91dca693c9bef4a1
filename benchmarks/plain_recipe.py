"""The plain-vs-residual laptop recipe as a plain PyTorch loop: a check on cifar-train's numbers.

Everything of a training run is written out here in plain PyTorch: reading the CIFAR-10 pickles, the
same training images (``data.num_train`` of the suite's split), batch augmentation (4-pixel reflect
pad, random crop, flip), SGD with He et al.'s settings, the linear warm-up and /10 steps at 50 % and
75 % of the run, bf16 autocast where the CPU has native BF16, and the final test accuracy. Only the
net's class comes from the suite (``CifarResNet``, checked against the published nets' logits), so a
gap between this loop and ``cifar-reproduce plain_vs_residual_laptop`` is the training code's, not
the net's.

    python benchmarks/plain_recipe.py --data-root DIR --net plain20 --seed 0 [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cifar_resnets.hardware import cpu_has_native_bf16
from cifar_resnets.models.cifar_resnet import CifarResNet

NETS = {"plain20": (20, False), "resnet20": (20, True), "plain56": (56, False), "resnet56": (56, True)}
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def read_split(folder: Path, files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for name in files:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")  # the official files' keys are bytes this way
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(batch[b"labels"])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels)


def normalise(images: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return ((images.float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Reflect-pad by 4, crop 32x32 at a random offset per image, flip half the images."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    offsets = torch.arange(32)
    rows = torch.randint(0, 9, (n, 1), generator=generator) + offsets
    cols = torch.randint(0, 9, (n, 1), generator=generator) + offsets
    flip = torch.rand(n, generator=generator) < 0.5
    cols[flip] = cols[flip].flip(-1)
    batch, channel = torch.arange(n).view(n, 1, 1, 1), torch.arange(3).view(1, 3, 1, 1)
    cropped = padded[batch, channel, rows.view(n, 1, 32, 1), cols.view(n, 1, 1, 32)]
    return cropped.contiguous(memory_format=torch.channels_last)


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    folder = Path(args.data_root) / "cifar-10-batches-py"
    train_images, train_labels = read_split(folder, [f"data_batch_{i}" for i in range(1, 6)])
    # The suite's split (data.split_seed 0): val_size images held out of a permutation, then the first
    # num_train of the rest
    order = np.random.default_rng(0).permutation(train_images.shape[0])
    keep = np.sort(order[args.val_size :][: args.num_train])
    x_train, y_train = normalise(train_images[keep]), train_labels[keep]
    x_test, y_test = read_split(folder, ["test_batch"])
    depth, residual = NETS[args.net]
    net = CifarResNet(depth=depth, residual=residual, shortcut=args.shortcut,
                      zero_init_residual=residual and args.zero_init_residual)  # fmt: skip
    net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    steps_per_epoch = args.num_train // args.batch_size
    total = steps_per_epoch * args.epochs
    milestones = [int(0.5 * total), int(0.75 * total)]

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / args.warmup_steps) if args.warmup_steps else 1.0
        return warm * 0.1 ** sum(step >= m for m in milestones)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    curve, start = [], time.perf_counter()
    for epoch in range(args.epochs):
        net.train()
        order = torch.randperm(args.num_train, generator=generator)
        loss_sum = correct = seen = 0
        for k in range(steps_per_epoch):
            idx = order[k * args.batch_size : (k + 1) * args.batch_size]
            x, y = augment(x_train[idx], generator), y_train[idx]
            with torch.autocast("cpu", dtype=dtype, enabled=args.bf16):
                logits = net(x)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        curve.append({"epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen})
        print(
            f"{args.net} seed {args.seed} epoch {epoch}: loss {loss_sum / seen:.4f}, acc {correct / seen:.4f}"
        )
    seconds = time.perf_counter() - start
    net.eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=args.bf16):
        hits = sum((net(normalise(x_test[i : i + 500])).argmax(1) == y_test[i : i + 500]).sum().item()
                   for i in range(0, len(y_test), 500))  # fmt: skip
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    result = {**settings, "test_acc": hits / len(y_test), "train_seconds": seconds, "curve": curve}
    print(f"{args.net} seed {args.seed}: test accuracy {100 * result['test_acc']:.2f} % in {seconds:.0f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True, help="folder holding cifar-10-batches-py")
    parser.add_argument("--net", choices=NETS, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-train", type=int, default=10000)
    parser.add_argument("--val-size", type=int, default=0, help="images held out before num_train is taken")
    parser.add_argument("--shortcut", choices=("A", "B"), default="B")
    parser.add_argument(
        "--zero-init-residual", action="store_true", help="residual nets' branches start at 0"
    )
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up steps")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=cpu_has_native_bf16())
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    args = parser.parse_args()
    result = train(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""``cifar-eval``: the test-set report of one checkpoint.

Arguments are parsed before the inference modules (torch) are imported, so ``--help`` and argument
errors answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cifar_resnets.cli.common import keyvalue_to_options, user_errors
from cifar_resnets.inference.options import SPLITS, TTA_MODES


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cifar-eval",
        description="Test-set report of a checkpoint: accuracy, per-class precision/recall/F1, "
        "confusion matrix. key=value and --key value forms are both accepted.",
    )
    parser.add_argument(
        "--ckpt",
        required=True,
        help="checkpoint (RUN/checkpoints/last.ckpt), export bundle, "
        "or published net (pretrained:akamaster/resnet20)",
    )
    parser.add_argument("--data-root", default=None, help="folder holding the dataset (default: as trained)")
    parser.add_argument("--tta", default="none", choices=TTA_MODES, help="test-time augmentation")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--out-dir", default=None, help="where to write eval_* files (default: run folder)")
    keys = ["ckpt", "data.root", "data_root", "tta", "split", "batch_size", "device", "out_dir"]
    return parser.parse_args(keyvalue_to_options(list(sys.argv[1:] if argv is None else argv), keys))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with user_errors("cifar-eval"):
        from cifar_resnets.hardware import set_cpu_threads

        set_cpu_threads()  # torch's pool sized to the cores this process may use
        from cifar_resnets.inference.evaluate import evaluate

        report = evaluate(
            args.ckpt, args.data_root, args.split, args.tta, args.batch_size, args.device, args.out_dir
        )
    print(report["markdown"])
    print(f"{report['num_images']} images in {report['seconds']:.1f} s")
    for path in report["files"].values():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

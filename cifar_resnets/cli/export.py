"""``cifar-export``: a checkpoint as safetensors weights with a JSON card, ONNX and optionally TorchScript.

Arguments are parsed before torch is imported, so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cifar_resnets.cli.common import keyvalue_to_options, user_errors


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cifar-export",
        description="Export a checkpoint: model.safetensors + model.json (the card: architecture, classes, "
        "input size, mean/std, final accuracies, the training command), model.onnx (dynamic batch), "
        "optionally model.torchscript.pt. cifar-predict and cifar-eval read the bundle like a checkpoint.",
    )
    parser.add_argument(
        "--ckpt",
        required=True,
        help="checkpoint (RUN/checkpoints/last.ckpt), export bundle, "
        "or published net (pretrained:akamaster/resnet20)",
    )
    parser.add_argument("--out", default=None, help="output folder (default: RUN/export)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX file")
    parser.add_argument("--torchscript", action="store_true", help="also write a traced TorchScript file")
    parser.add_argument(
        "--verify",
        type=int,
        default=0,
        metavar="N",
        help="run the ONNX file on the first N test images and record its largest probability difference",
    )
    parser.add_argument("--data-root", default=None, help="dataset folder for --verify (default: as trained)")
    keys = ["ckpt", "out", "verify", "data.root", "data_root"]
    return parser.parse_args(keyvalue_to_options(list(sys.argv[1:] if argv is None else argv), keys))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with user_errors("cifar-export"):
        from cifar_resnets.export.exporter import export_checkpoint

        result = export_checkpoint(
            args.ckpt, args.out, not args.no_onnx, args.torchscript, args.verify, args.data_root
        )
    for path in result.files.values():
        print(f"wrote {path}")
    if result.onnx_max_diff is not None:
        checked = result.card["onnx"]["checked_images"]
        print(
            f"ONNX vs checkpoint on {checked} test images: "
            f"max probability difference {result.onnx_max_diff:.2e}"
        )


if __name__ == "__main__":
    main()

"""``cifar-predict``: labels for new images into a CSV (methods: ``cifar_resnets.inference.methods``).

Arguments are parsed and checked before the inference modules (torch) are imported, so ``--help`` and
argument errors answer at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from cifar_resnets.cli.common import keyvalue_to_options, user_errors
from cifar_resnets.inference.options import METHODS, TTA_MODES, check_method
from cifar_resnets.inference.outputs import check_output_file

SHOWN_SKIPPED = 20  # the summary lists this many skipped entries, then counts the rest


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cifar-predict",
        description="Predict labels into a CSV (id,label[,prob_<class>...]) with one of the methods "
        f"{', '.join(METHODS)}; docs/predict.md gives their exact rules.",
    )
    parser.add_argument(
        "--ckpt",
        action="append",
        default=[],
        help="checkpoint, export bundle or published net (pretrained:akamaster/resnet20); "
        "repeat for an ensemble",
    )
    parser.add_argument("--input", help="an image, a folder of images, .npy uint8 array, or CIFAR pickle")
    parser.add_argument("--recursive", action="store_true", help="also read the subfolders of a folder input")
    parser.add_argument("--method", default="plain", choices=METHODS)
    parser.add_argument("--csv", nargs="+", default=[], help="ensemble these prediction CSVs")
    parser.add_argument("--out", required=True, help="output CSV")
    parser.add_argument("--probs", action="store_true", help="also write per-class probabilities")
    parser.add_argument("--tta", default=None, choices=TTA_MODES, help="views (tta/adaptive/ensemble)")
    parser.add_argument("--labels", default=None, help="true labels: .csv id,label, .npy or CIFAR pickle")
    parser.add_argument("--data-root", default=None, help="dataset folder for the validation split")
    parser.add_argument("--hard-classes", default=None, help="N (lowest validation F1) or names a,b,c")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    keys = [
        "ckpt",
        "input",
        "method",
        "out",
        "tta",
        "labels",
        "data.root",
        "data_root",
        "batch_size",
        "device",
    ]
    return parser.parse_args(keyvalue_to_options(list(sys.argv[1:] if argv is None else argv), keys))


def summary_lines(summary: dict[str, Any], out: object) -> list[str]:
    """What cifar-predict prints after writing the CSV."""
    lines = [f"cifar-predict: {summary['method']} on {summary['images']} images -> {out}"]
    skipped = summary.get("skipped") or []
    if skipped:
        lines.append(f"skipped {len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} of the input:")
        lines += [f"  {ident}: {reason}" for ident, reason in skipped[:SHOWN_SKIPPED]]
        if len(skipped) > SHOWN_SKIPPED:
            lines.append(f"  ... and {len(skipped) - SHOWN_SKIPPED} more")
    if "rule" in summary:
        lines.append(f"rule: {summary['rule']}")
    if "thresholds" in summary:
        lines.append("thresholds: " + ", ".join(f"{k}>={v:.2f}" for k, v in summary["thresholds"].items()))
    if "validation_accuracy" in summary:
        accs = ", ".join(f"{k} {100 * v:.2f}%" for k, v in summary["validation_accuracy"].items())
        lines.append(f"validation accuracy ({summary['validation_images']} images): {accs}")
    if "accuracy" in summary:
        lines.append(f"accuracy: {100 * summary['accuracy']:.2f}%")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with user_errors("cifar-predict"):
        check_method(args.method, args.ckpt, args.tta, args.csv, args.input)
        check_output_file(args.out, [*args.ckpt, args.input, args.labels, *args.csv], "--out")
        from cifar_resnets.hardware import set_cpu_threads

        set_cpu_threads()  # torch's pool sized to the cores this process may use
        from cifar_resnets.inference.methods import predict, predict_csvs
        from cifar_resnets.inference.predictions import write_predictions

        if args.csv:
            prediction = predict_csvs(args.csv, args.labels)
        else:
            prediction = predict(
                args.input,
                args.ckpt,
                args.method,
                args.tta,
                args.labels,
                args.data_root,
                args.hard_classes,
                args.batch_size,
                args.device,
                args.recursive,
            )
        out = write_predictions(prediction, args.out, args.probs)
    print("\n".join(summary_lines(prediction.summary, out)))


if __name__ == "__main__":
    main()

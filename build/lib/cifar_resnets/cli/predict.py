"""``cifar-predict``: labels for new images into a CSV."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cifar_resnets.cli.common import keyvalue_to_options, user_errors
from cifar_resnets.inference.methods import (
    METHODS,
    PredictError,
    Prediction,
    predict,
    predict_csvs,
    write_predictions,
)
from cifar_resnets.inference.predict import TTA_MODES


# ----- command line -----
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cifar-predict",
        description="Predict labels into a CSV (id,label[,prob_<class>...]) with one of the methods "
        f"{', '.join(METHODS)}; see the module docstring for their exact rules.",
    )
    parser.add_argument("--ckpt", action="append", default=[], help="checkpoint (repeat for an ensemble)")
    parser.add_argument("--input", help="CIFAR pickle, .npy uint8 array, or folder of images")
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


def _print_summary(prediction: Prediction, out: Path) -> None:
    s = prediction.summary
    print(f"cifar-predict: {s['method']} on {s['images']} images -> {out}")
    skipped = s.get("skipped") or []
    if skipped:
        shown = "; ".join(f"{name}: {why}" for name, why in skipped[:3])
        print(f"skipped {len(skipped)} file(s): {shown}")
    if "rule" in s:
        print(f"rule: {s['rule']}")
    if "thresholds" in s:
        print("thresholds: " + ", ".join(f"{k}>={v:.2f}" for k, v in s["thresholds"].items()))
    if "validation_accuracy" in s:
        accs = ", ".join(f"{k} {100 * v:.2f}%" for k, v in s["validation_accuracy"].items())
        print(f"validation accuracy ({s['validation_images']} images): {accs}")
    if "accuracy" in s:
        print(f"accuracy: {100 * s['accuracy']:.2f}%")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with user_errors("cifar-predict"):
        if args.csv:
            if args.method != "ensemble" or args.ckpt or args.input:
                raise PredictError("--csv works with --method ensemble alone (no --ckpt or --input)")
            prediction = predict_csvs(args.csv, args.labels)
        else:
            if not args.input:
                raise PredictError("give --input (a CIFAR pickle, a .npy file or a folder of images)")
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
            )
        out = write_predictions(prediction, args.out, args.probs)
    _print_summary(prediction, out)


if __name__ == "__main__":
    main()

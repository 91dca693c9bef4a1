#!/usr/bin/env bash
# GPU check for cifar-eval and cifar-predict: evaluates one checkpoint on the CUDA device with every TTA
# mode (accuracy, images/s; the plain accuracy is compared with the run's own test/acc), then runs every
# cifar-predict method on the test batch (accuracy, validation accuracy of the tuned methods, seconds).
# Writes $OUT/eval_predict.json and $OUT/eval_predict.md (plus the eval_* reports and prediction CSVs).
#   EVAL_CKPT=PATH   checkpoint to use, e.g. the ResNet-20 row of benchmarks/gpu/table_row.sh
#                    ($OUT_OF_THAT_RUN/row/checkpoints/last.ckpt); unset: train ResNet-20 for EVAL_STEPS
#   EVAL_STEPS=3000  steps of that short training run (real CIFAR-10 in $CIFAR_DATA)
#   GPU_CHECK_TINY=1 CPU, synthetic data, a few steps: checks the script itself
set -euo pipefail
source "$(dirname "$0")/common.sh"
require_suite
cd "$REPO"
: "${OUT:?set OUT to the folder for the results}"
export HYDRA_FULL_ERROR=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

if [ "${GPU_CHECK_TINY:-0}" = "1" ]; then
  DATA="$WORK/data"
  "$PY" -m cifar_resnets.data.synthetic "$DATA" --train 512 --test 256 >/dev/null
  EVAL_STEPS=${EVAL_STEPS:-16}; DEVICE=cpu
  BASE=(trainer.max_epochs=-1)
  EXTRA=(trainer.accelerator=cpu data.val_size=128 data.eval_batch_size=128 data.batch_size=32 model.depth=8
         optim=adam optim.lr=0.01 schedule=constant callbacks.progress_bar=null)
else
  DATA=${CIFAR_DATA:?set CIFAR_DATA to the folder holding cifar-10-batches-py}
  EVAL_STEPS=${EVAL_STEPS:-3000}; DEVICE=auto
  BASE=(experiment=he2016/resnet20 schedule.unit=fraction "schedule.milestones=[0.5,0.75]" trainer.max_epochs=-1)
  EXTRA=(callbacks.progress_bar.refresh_rate=200)
fi

if [ -z "${EVAL_CKPT:-}" ]; then
  "$PY" -m cifar_resnets.cli.train "${BASE[@]}" data.root="$DATA" trainer.max_steps="$EVAL_STEPS" \
    "${EXTRA[@]}" hydra.run.dir="$OUT/run" >"$OUT/train.log" 2>&1 || { tail -20 "$OUT/train.log"; exit 1; }
  EVAL_CKPT="$OUT/run/checkpoints/last.ckpt"
fi
TEST_BATCH="$DATA/cifar-10-batches-py/test_batch"

timed() {  # $1 log name, rest: command; prints wall seconds
  local s=$(date +%s.%N)
  "${@:2}" >"$OUT/$1.log" 2>&1 || { tail -20 "$OUT/$1.log" >&2; return 1; }
  awk "BEGIN{print $(date +%s.%N) - $s}"
}
declare -A WALL
for tta in none flip flip_translate; do
  WALL[eval_$tta]=$(timed "eval_$tta" "$PY" -m cifar_resnets.cli.evaluate ckpt="$EVAL_CKPT" data.root="$DATA" \
    tta="$tta" device="$DEVICE" out_dir="$OUT/eval")
done
for method in plain tta class_specialized adaptive; do
  WALL[predict_$method]=$(timed "predict_$method" "$PY" -m cifar_resnets.cli.predict --ckpt "$EVAL_CKPT" \
    --input "$TEST_BATCH" --method "$method" --data-root "$DATA" --device "$DEVICE" --out "$OUT/$method.csv")
done
"$PY" - "$TEST_BATCH" "$OUT/truth.csv" <<'PYEOF'
import csv, sys
from pathlib import Path
from cifar_resnets.data.cifar_files import load_cifar_pickle, read_class_names
_, labels = load_cifar_pickle(sys.argv[1])
names = read_class_names(Path(sys.argv[1]).parent, "cifar10")
with open(sys.argv[2], "w", newline="") as f:
    csv.writer(f).writerows([["id", "label"], *([i, names[y]] for i, y in enumerate(labels))])
PYEOF
WALL[predict_ensemble]=$(timed predict_ensemble "$PY" -m cifar_resnets.cli.predict --ckpt "$EVAL_CKPT" \
  --ckpt "$EVAL_CKPT" --input "$TEST_BATCH" --method ensemble --device "$DEVICE" --out "$OUT/ensemble.csv")
WALL[predict_csv_vote]=$(timed predict_csv_vote "$PY" -m cifar_resnets.cli.predict --method ensemble \
  --csv "$OUT/tta.csv" "$OUT/class_specialized.csv" "$OUT/adaptive.csv" --labels "$OUT/truth.csv" \
  --out "$OUT/csv_vote.csv")

for k in "${!WALL[@]}"; do echo "$k ${WALL[$k]}"; done >"$OUT/walls.txt"
"$PY" - "$OUT" "$EVAL_CKPT" <<'PYEOF'
import json, re, sys
from pathlib import Path
out, ckpt = Path(sys.argv[1]), Path(sys.argv[2])
walls = dict(line.split() for line in (out / "walls.txt").read_text().splitlines())
metrics_file = ckpt.parent.parent / "metrics.json"
run = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
summary = {"checkpoint": str(ckpt), "run_test_acc": run.get("test/acc"), "run_precision": run.get("precision"),
           "eval": {}, "predict": {}}
for tta in ("none", "flip", "flip_translate"):
    rep = json.loads((out / "eval" / ("eval_test" + ("" if tta == "none" else f"_{tta}") + ".json")).read_text())
    summary["eval"][tta] = {"accuracy": rep["accuracy"], "images": rep["num_images"], "seconds": rep["seconds"],
                            "images_per_second": rep["images_per_second"], "wall_seconds": float(walls[f"eval_{tta}"])}
for method in ("plain", "tta", "class_specialized", "adaptive", "ensemble", "csv_vote"):
    log = (out / f"predict_{method}.log").read_text()
    acc = re.search(r"^accuracy: ([\d.]+)%", log, re.M)
    val = re.search(r"^validation accuracy .*$", log, re.M)
    summary["predict"][method] = {"accuracy": float(acc.group(1)) / 100 if acc else None,
                                  "validation": val.group(0) if val else None,
                                  "wall_seconds": float(walls[f"predict_{method}"])}
(out / "eval_predict.json").write_text(json.dumps(summary, indent=2) + "\n")
lines = [f"checkpoint {ckpt} (run test/acc {summary['run_test_acc']}, trained in {summary['run_precision']})", "",
         "| cifar-eval tta | accuracy | images/s (model only) | wall s |", "|---|---:|---:|---:|"]
for tta, r in summary["eval"].items():
    lines.append(f"| {tta} | {100 * r['accuracy']:.2f}% | {r['images_per_second']:.0f} | {r['wall_seconds']:.1f} |")
lines += ["", "| cifar-predict method | test accuracy | validation | wall s |", "|---|---:|---|---:|"]
for m, r in summary["predict"].items():
    acc = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}%"
    lines.append(f"| {m} | {acc} | {r['validation'] or ''} | {r['wall_seconds']:.1f} |")
(out / "eval_predict.md").write_text("\n".join(lines) + "\n")
print((out / "eval_predict.md").read_text())
PYEOF

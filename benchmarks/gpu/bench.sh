#!/usr/bin/env bash
# GPU check of the speed work, in order of importance so a short budget keeps what matters most:
#   - cifar-bench: cifar-train as users run it against the plain PyTorch reference loop (DataLoader +
#     PIL), ResNet-20 (and BENCH_MODELS2) at the paper's batch 128;
#   - benchmarks/raw_loop.py: the same cifar-train steps against a plain loop without Lightning, at
#     batch 128 and 512 (Lightning's share), and at 128 with cuDNN autotuning (trainer.benchmark=true);
#   - benchmarks/time_to_accuracy.py: the 30-epoch one-cycle ResNet-20 recipe with and without the
#     recorded training step (accuracy must agree within 0.3 points);
#   - cifar-bench with eager steps (no CUDA graphs, no compilation) at batch 512: what the graphs buy.
# Results go to $OUT/bench/ (one JSON per step, summary.md, summary.json) as each step ends.
#
# Data: $BENCH_DATA or $CIFAR_DATA (a folder holding cifar-10-batches-py).
# Tunable: BENCH_STEPS (timed steps, 200), BENCH_MODELS2 (deeper models, "resnet56"), TTA_EPOCHS (30),
# STEP_TIMEOUT (seconds per step, 240), BUDGET_S (no step starts after this many seconds, 200),
# BENCH_ONLY (space-separated step names, e.g. "throughput_resnet20_bs128 accuracy": run only those).
# GPU_CHECK_TINY=1: CPU-sized smoke run (synthetic data if none given).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_suite
out="${OUT:?set OUT}/bench"
mkdir -p "$out"
data="${BENCH_DATA:-${CIFAR_DATA:-}}"
tiny="${GPU_CHECK_TINY:-0}"
step_timeout="${STEP_TIMEOUT:-240}"
budget="${BUDGET_S:-200}"  # steps start only while this many seconds since the start are not spent

if [[ "$tiny" == 1 ]]; then
  steps=2; warm=(--warmup 1); batch_small=32; batch_big=64; epochs=1; models2=""
  budget="${BUDGET_S:-100000}"; step_timeout="${STEP_TIMEOUT:-100000}"
  synthetic=(--synthetic-train 256); workers=(--workers 0)
  tta_extra=(--override data.batch_size=64 --override data.eval_batch_size=128
             --override trainer.limit_test_batches=2)
else
  steps="${BENCH_STEPS:-200}"; warm=(); batch_small=128; batch_big=512; epochs="${TTA_EPOCHS:-30}"
  models2="${BENCH_MODELS2:-resnet56}"
  synthetic=(); workers=(--workers 8)
  tta_extra=()
  [[ -n "$data" ]] || { echo "bench.sh: set BENCH_DATA or CIFAR_DATA to a folder with cifar-10-batches-py" >&2; exit 2; }
fi
data_arg=(); [[ -n "$data" ]] && data_arg=(--data-root "$data")

t_all=$(date +%s)
known=""; selected=""  # step names, for BENCH_ONLY
step() {  # step NAME COMMAND...: one measurement, timed, its JSON in $out/NAME.json, never stopping the script
  local name="$1"; shift
  known+=" $name"
  if [[ -n "${BENCH_ONLY:-}" && " $BENCH_ONLY " != *" $name "* ]]; then return; fi
  selected+=" $name"
  local t0 left limit; t0=$(date +%s)
  left=$(( budget - (t0 - t_all) ))
  if (( left < 20 )); then
    echo "== $name: skipped, BUDGET_S=$budget spent" | tee -a "$out/log.txt"; return
  fi
  limit=$(( left < step_timeout ? left : step_timeout ))
  echo "== $name (limit ${limit} s): $*" | tee -a "$out/log.txt"
  timeout "$limit" "$PY" "$@" "${data_arg[@]}" "${synthetic[@]}" --json "$out/$name.json" >> "$out/log.txt" 2>&1
  local rc=$?
  echo "== $name: rc=$rc in $(( $(date +%s) - t0 )) s (total $(( $(date +%s) - t_all )) s)" | tee -a "$out/log.txt"
}
bench=(-m cifar_resnets.cli.bench "${workers[@]}")
raw_loop=("$REPO/benchmarks/raw_loop.py")

for m in resnet20 $models2; do
  step "throughput_${m}_bs$batch_small" "${bench[@]}" --model "$m" --batch-size "$batch_small" --steps "$steps" \
    "${warm[@]}"
  step "lightning_${m}" "${raw_loop[@]}" --model "$m" --batch-size "$batch_small" "$batch_big" --steps "$steps" \
    "${warm[@]}"
done
# cuDNN autotuning (the default trainer.benchmark=null leaves it off) at the paper's batch: summarised apart,
# with its own Table 6 estimate.
for m in resnet20 $models2; do
  step "lightning_${m}_bs${batch_small}_cudnn_benchmark" "${raw_loop[@]}" --model "$m" --batch-size "$batch_small" \
    --steps "$steps" "${warm[@]}" --override trainer.benchmark=true
done
step accuracy "$REPO/benchmarks/time_to_accuracy.py" --model resnet20 --epochs "$epochs" "${tta_extra[@]}"
step "throughput_resnet20_bs${batch_big}_eager" "${bench[@]}" --model resnet20 --batch-size "$batch_big" \
  --paths cifar-train --steps "$steps" "${warm[@]}" --override module.cuda_graph=false --override model.compile=false

if [[ -n "${BENCH_ONLY:-}" && -z "$selected" ]]; then
  echo "bench.sh: BENCH_ONLY=\"$BENCH_ONLY\" names none of the steps:$known" >&2
  exit 2
fi

"$PY" - "$out" <<'PY'
import json, sys
from pathlib import Path

from cifar_resnets.bench.results import Result, format_table
from cifar_resnets.bench.table6 import time_to_table

out = Path(sys.argv[1])
reports = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.stem != "summary"}
VARIANT = "_cudnn_benchmark"  # steps run with --override trainer.benchmark=true
def throughput(variant: bool) -> list[Result]:
    return [Result(**r) for name, rep in reports.items()
            if name.startswith(("throughput", "lightning")) and name.endswith(VARIANT) == variant
            for r in rep["results"]]
results, autotuned = throughput(False), throughput(True)
first = next(iter(reports.values()), {})
lines = [f"# Speed on {first.get('device')} (torch {first.get('torch')}); data: {first.get('data')}", ""]
for title, rows in (("", results), ("With cuDNN autotuning (trainer.benchmark=true):", autotuned)):
    if not rows:
        continue
    lines += ([title, ""] if title else []) + [format_table(rows), ""]
    for path, t in time_to_table(rows).items():
        lines.append(f"- He et al. Table 6 estimated, {path}: {t['minutes']} min ({t['costed']})")
    lines.append("")
for name, rep in reports.items():
    for share in rep.get("share", []):
        lines.append(f"- Lightning's share, {name}: {json.dumps(share)}")
accuracy = reports.get("accuracy", {})
for row in accuracy.get("time_to_accuracy", []):
    lines.append(f"- time to accuracy, {row['variant']}: {json.dumps(row)}")
if "accuracy_difference_points" in accuracy:
    lines.append(f"- accuracy cuda_graph - eager: {accuracy['accuracy_difference_points']:+.2f} points")
(out / "summary.md").write_text("\n".join(lines) + "\n")
summary = {"results": [r.__dict__ for r in results], "cudnn_benchmark": [r.__dict__ for r in autotuned],
           "accuracy": accuracy.get("time_to_accuracy", [])}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print("\n".join(lines))
PY

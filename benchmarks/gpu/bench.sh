#!/usr/bin/env bash
# GPU check of the speed work: cifar-bench images/s (seed-style loop vs cifar-train as users run it, i.e.
# each training step replayed as one CUDA graph, vs the same Trainer eager, plus the suite's raw loop for
# Lightning's share) and the 30-epoch one-cycle ResNet-20 recipe with and without CUDA graphs (accuracy
# must agree within 0.3 points), and ResNet-20/56 at batch 128 again with cuDNN autotuning
# (trainer.benchmark=true). Results go to $OUT/bench/ (JSON per step, summary.md) as each step ends.
#
# Data: $BENCH_DATA or $CIFAR_DATA (a folder holding cifar-10-batches-py).
# Tunable: BENCH_STEPS (timed steps, 200), BENCH_MODELS2 (models of step 4, "resnet56"), TTA_EPOCHS (30),
# STEP_TIMEOUT (seconds per step, 240), BUDGET_S (no step starts after this many seconds, 200),
# BENCH_ONLY (space-separated step names, e.g. "throughput_resnet20_bs128 accuracy": run only those).
# GPU_CHECK_TINY=1: CPU-sized smoke run (synthetic data if none given).
# Without the package installed: common.sh puts the repository on PYTHONPATH.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
out="${OUT:?set OUT}/bench"
mkdir -p "$out"
data="${BENCH_DATA:-${CIFAR_DATA:-}}"
tiny="${GPU_CHECK_TINY:-0}"
step_timeout="${STEP_TIMEOUT:-240}"
budget="${BUDGET_S:-200}"  # steps start only while this many seconds since the start are not spent

if [[ "$tiny" == 1 ]]; then
  steps=2; warm=(--warmup 1); batch_small=32; batch_big=64; epochs=1; models2=""
  budget="${BUDGET_S:-100000}"; step_timeout="${STEP_TIMEOUT:-100000}"
  common=(--workers 0 --synthetic-train 256)
  tta_extra=(--override data.num_train=256 --override data.batch_size=64 --override data.eval_batch_size=128
             --override trainer.limit_test_batches=2)
else
  steps="${BENCH_STEPS:-200}"; warm=(); batch_small=128; batch_big=512; epochs="${TTA_EPOCHS:-30}"
  models2="${BENCH_MODELS2:-resnet56}"
  common=(--workers 8)
  tta_extra=()
  [[ -n "$data" ]] || { echo "bench.sh: set BENCH_DATA or CIFAR_DATA to a folder with cifar-10-batches-py" >&2; exit 2; }
fi
data_arg=(); [[ -n "$data" ]] && data_arg=(--data-root "$data")

t_all=$(date +%s)
known=""; selected=""  # step names, for BENCH_ONLY
step() {  # step NAME ARGS...: one cifar-bench call, timed, never stopping the script
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
  echo "== $name (limit ${limit} s): cifar-bench $*" | tee -a "$out/log.txt"
  timeout "$limit" "$PY" -m cifar_resnets.cli.bench "${data_arg[@]}" "${common[@]}" "$@" \
    --json "$out/$name.json" >> "$out/log.txt" 2>&1
  local rc=$?
  echo "== $name: rc=$rc in $(( $(date +%s) - t0 )) s (total $(( $(date +%s) - t_all )) s)" | tee -a "$out/log.txt"
}

# In order of importance, so a short budget keeps what matters most.
# 1. ResNet-20 at the paper's batch 128 and at 512: the seed-style loop, cifar-train as users run it
#    (suite) and the same settings without Lightning (raw: Lightning's share).
step throughput_resnet20_bs$batch_small --model resnet20 --batch-size "$batch_small" --paths seed,suite,raw \
  --steps "$steps" "${warm[@]}"
step throughput_resnet20_bs$batch_big --model resnet20 --batch-size "$batch_big" --paths suite,raw \
  --steps "$steps" "${warm[@]}"
# 2. Deeper nets.
for m in $models2; do
  step "throughput_${m}_bs$batch_small" --model "$m" --batch-size "$batch_small" --paths seed,suite,raw \
    --steps "$steps" "${warm[@]}"
  step "throughput_${m}_bs$batch_big" --model "$m" --batch-size "$batch_big" --paths suite,raw --steps "$steps" \
    "${warm[@]}"
done
# 2b. cuDNN autotuning (trainer.benchmark=true; the default leaves it off) at the paper's batch: reported
#     apart from the rows above, and Table 6 extrapolated from it on its own.
for m in resnet20 $models2; do
  step "throughput_${m}_bs${batch_small}_cudnn_benchmark" --model "$m" --batch-size "$batch_small" \
    --paths suite,raw --steps "$steps" "${warm[@]}" --override trainer.benchmark=true
done
# 3. Accuracy with and without CUDA graphs: both without inductor, so the recorded step is the only
#    difference (inductor's kernels round differently from eager ones, which alone moves a run by
#    about as much as a different seed).
step accuracy --model resnet20 --time-to-accuracy --epochs "$epochs" --paths fast,eager --compile off \
  "${tta_extra[@]}"
# 4. The eager Trainer for reference, if time is left.
step throughput_resnet20_bs${batch_big}_eager --model resnet20 --batch-size "$batch_big" --paths eager \
  --steps "$steps" "${warm[@]}"

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
            if name.startswith("throughput") and name.endswith(VARIANT) == variant for r in rep["results"]]
results, autotuned = throughput(False), throughput(True)
first = next(iter(reports.values()), {})
lines = [f"# cifar-bench on {first.get('device')} (torch {first.get('torch')}); data: {first.get('data')}", ""]
for title, rows in (("", results), ("With cuDNN autotuning (trainer.benchmark=true):", autotuned)):
    if not rows:
        continue
    lines += ([title, ""] if title else []) + [format_table(rows), ""]
    for path, t in time_to_table(rows).items():
        lines.append(f"- He et al. Table 6 extrapolated, {path} path: {t['minutes']} min ({t['formula']})")
    lines.append("")
tta = reports.get("accuracy", {}).get("time_to_accuracy", [])
for row in tta:
    lines.append(f"- time to accuracy, {row['path']}: {json.dumps(row)}")
if len(tta) == 2 and all(r["test_acc"] is not None for r in tta):
    lines.append(f"- accuracy fast - eager: {100 * (tta[0]['test_acc'] - tta[1]['test_acc']):+.2f} points")
(out / "summary.md").write_text("\n".join(lines) + "\n")
summary = {"results": [r.__dict__ for r in results], "cudnn_benchmark": [r.__dict__ for r in autotuned], "accuracy": tta}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print("\n".join(lines))
PY

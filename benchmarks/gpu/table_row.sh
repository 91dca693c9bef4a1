#!/usr/bin/env bash
# GPU check for cifar-reproduce: (1) the ResNet-20 row of he2016_table6 (He et al.'s recipe: SGD 0.1,
# batch 128, 45k/5k split, lr /10 at 50% and 75% of the run = 32k/48k of 64k) on the real CIFAR-10 copy
# in $CIFAR_DATA, for ROW_STEPS steps (full recipe: 64000); (2) sharing one GPU: for each of CONC_MODELS,
# aggregate training images/s of 4 concurrent jobs (joblib launcher, n_jobs=4) against one job,
# CONC_STEPS steps each, and again with CUDA MPS (kernels of several processes run side by side instead
# of time-slicing the GPU), then He et al. Table 6 extrapolated from one job and from the best sharing.
# Writes $OUT/table_row.json and $OUT/table_row.md (plus the runs' metrics and logs).
#   ROW_STEPS=64000   steps of the table row (0 skips the row: concurrency only)
#   ROW_COMPILE=1     the defaults (inductor kernels, each step replayed as a CUDA graph); on failure the
#                     row reruns eager with ROW_STEPS/4 steps and the failure is reported
#   CONC_MODELS="resnet20 resnet56"  he2016 experiments to share the GPU with (two depths: the Table 6
#                     estimate costs the other depths from them, as cifar-bench does)
#   CONC_STEPS=1500   steps of each concurrency job
#   CONC_MPS=auto     auto: also with MPS where nvidia-cuda-mps-control exists; 1: MPS required; 0: never
#   CONC_EXTRA="model.compile=false"  overrides of the concurrency jobs (no inductor: its compile time
#                     would fall into the first epoch's images/s)
#   GPU_CHECK_TINY=1  CPU, synthetic data, a few steps: checks the script itself
set -euo pipefail
source "$(dirname "$0")/common.sh"
require_suite
cd "$REPO"
: "${OUT:?set OUT to the folder for the results}"
export HYDRA_FULL_ERROR=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ "${GPU_CHECK_TINY:-0}" = "1" ]; then
  DATA="$WORK/data"
  "$PY" -m cifar_resnets.data.synthetic "$DATA" --train 512 --test 256 >/dev/null
  ROW_STEPS=${ROW_STEPS:-8}; CONC_STEPS=${CONC_STEPS:-4}; ROW_COMPILE=${ROW_COMPILE:-0}
  CONC_MODELS=${CONC_MODELS:-"resnet20 resnet32"}; CONC_MPS=${CONC_MPS:-0}
  EXTRA=(trainer.accelerator=cpu data.val_size=128 data.eval_batch_size=128 callbacks.progress_bar=null)
else
  DATA=${CIFAR_DATA:?set CIFAR_DATA to the folder holding cifar-10-batches-py}
  ROW_STEPS=${ROW_STEPS:-64000}; CONC_STEPS=${CONC_STEPS:-1500}; ROW_COMPILE=${ROW_COMPILE:-1}
  CONC_MODELS=${CONC_MODELS:-"resnet20 resnet56"}; CONC_MPS=${CONC_MPS:-auto}
  EXTRA=(callbacks.progress_bar.refresh_rate=200)
fi
case "$CONC_MPS" in auto|0|1) ;; *) echo "CONC_MPS=$CONC_MPS: use auto, 0 or 1" >&2; exit 2;; esac
if [ "$CONC_MPS" = 1 ] && ! command -v nvidia-cuda-mps-control >/dev/null; then
  echo "CONC_MPS=1 but nvidia-cuda-mps-control is not on PATH (it comes with the NVIDIA driver); use CONC_MPS=auto" >&2
  exit 2
fi
COMMON=(data.root="$DATA" schedule.unit=fraction "schedule.milestones=[0.5,0.75]" trainer.max_epochs=-1
        "${EXTRA[@]}")

row() {  # $1 steps, $2 compile true|false, $3 run dir
  local graphs=(); [ "$2" = true ] || graphs=(model.compile=false module.cuda_graph=false)
  "$PY" -m cifar_resnets.cli.train experiment=he2016/resnet20 "${COMMON[@]}" trainer.max_steps="$1" "${graphs[@]}" \
    hydra.run.dir="$3" >"$3.log" 2>&1
}
mkdir -p "$OUT"
ROW_NOTE=""
start=$(date +%s.%N)
if [ "$ROW_STEPS" = 0 ]; then
  ROW_NOTE="row skipped"
elif ! row "$ROW_STEPS" "$([ "$ROW_COMPILE" = 1 ] && echo true || echo false)" "$OUT/row"; then
  [ "$ROW_COMPILE" = 1 ] || { tail -20 "$OUT/row.log"; exit 1; }
  ROW_NOTE="compiled run failed ($(grep -E '^[A-Za-z.]*(Error|Exception)' "$OUT/row.log" | tail -1)); eager rerun"
  ROW_STEPS=$((ROW_STEPS / 4)); rm -rf "$OUT/row"
  start=$(date +%s.%N)
  row "$ROW_STEPS" false "$OUT/row"
fi
row_wall=$(awk "BEGIN{print $(date +%s.%N) - $start}")

conc() {  # $1 model, $2 seeds, $3 n_jobs, $4 sweep dir; prints the wall seconds
  local s=$(date +%s.%N)
  "$PY" -m cifar_resnets.cli.train -m experiment=he2016/"$1" "${COMMON[@]}" trainer.max_steps="$CONC_STEPS" \
    seed="$2" hydra/launcher=joblib hydra.launcher.n_jobs="$3" trainer.limit_val_batches=0 test_after_fit=false \
    ${CONC_EXTRA-model.compile=false} \
    hydra.sweep.dir="$4" 'hydra.sweep.subdir=seed${seed}' >"$4.log" 2>&1
  awk "BEGIN{print $(date +%s.%N) - $s}"
}

# CUDA MPS: a control daemon with its pipes in $WORK; the jobs find it through the same variables. A job
# that cannot reach it runs without MPS and says nothing, so the daemon's log is kept and its client
# connections counted.
MPS_NOTE=""
mps_start() {
  if ! command -v nvidia-cuda-mps-control >/dev/null; then MPS_NOTE="nvidia-cuda-mps-control not found"; return 1; fi
  export CUDA_MPS_PIPE_DIRECTORY="$WORK/mps/pipe" CUDA_MPS_LOG_DIRECTORY="$WORK/mps/log"
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if ! nvidia-cuda-mps-control -d; then
    MPS_NOTE="nvidia-cuda-mps-control -d failed"; unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY; return 1
  fi
}
mps_stop() {
  [ -n "${CUDA_MPS_PIPE_DIRECTORY:-}" ] || return 0
  echo quit | nvidia-cuda-mps-control || true
  cp "$CUDA_MPS_LOG_DIRECTORY/control.log" "$OUT/mps_control.log" 2>/dev/null || true
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
}
trap 'mps_stop; rm -rf "$WORK"' EXIT
trap 'exit 143' TERM INT  # so a timeout still stops the daemon

conc_runs=()  # model:kind:wall seconds
for model in $CONC_MODELS; do
  conc_runs+=("$model:one:$(conc "$model" 0 1 "$OUT/conc_${model}_one")")
  conc_runs+=("$model:four:$(conc "$model" 0,1,2,3 4 "$OUT/conc_${model}_four")")
done
if [ "$CONC_MPS" = 0 ]; then
  MPS_NOTE="not tried (CONC_MPS=0)"
elif mps_start; then
  for model in $CONC_MODELS; do
    conc_runs+=("$model:four_mps:$(conc "$model" 0,1,2,3 4 "$OUT/conc_${model}_four_mps")")
  done
  mps_stop
  clients=$(grep -ci "new client" "$OUT/mps_control.log" 2>/dev/null || true)
  MPS_NOTE="MPS daemon ran; its log names ${clients:-0} client connections"
elif [ "$CONC_MPS" = 1 ]; then
  echo "CONC_MPS=1 but MPS could not start: $MPS_NOTE" >&2; exit 1
fi

"$PY" - "$OUT" "$row_wall" "$ROW_STEPS" "$ROW_NOTE" "$MPS_NOTE" "${conc_runs[@]}" <<'PYEOF'
import json, sys
from pathlib import Path

from cifar_resnets.bench.table6 import TABLE6_BATCH, TABLE6_DEPTHS, TABLE6_STEPS, cifar_depth, seconds_per_image_in_depth

out, row_wall, steps, note, mps_note = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:6]
row_file = out / "row" / "metrics.json"
row = json.loads(row_file.read_text()) if row_file.exists() else None
JOBS = {"one": 1, "four": 4, "four_mps": 4}
sharing: dict[str, dict] = {}
for entry in sys.argv[6:]:
    model, kind, wall = entry.split(":")
    jobs = [json.loads(p.read_text()) for p in sorted((out / f"conc_{model}_{kind}").glob("seed*/metrics.json"))]
    assert len(jobs) == JOBS[kind], f"{model} {kind}: {len(jobs)} of {JOBS[kind]} jobs wrote metrics.json"
    images = sum(j["steps"] * 128 for j in jobs)
    sharing.setdefault(model, {})[kind] = {
        "images_per_second": round(sum(j["train_images_per_second"] for j in jobs), 1),  # while training
        "per_job_images_per_second": [j["train_images_per_second"] for j in jobs],
        "wall_seconds": round(float(wall), 1),
        "wall_clock_images_per_second": round(images / float(wall), 1),  # start-up included
    }
for model, kinds in sharing.items():
    for kind in ("four", "four_mps"):
        if kind in kinds:
            kinds[kind]["x_one_job"] = round(kinds[kind]["images_per_second"] / kinds["one"]["images_per_second"], 2)

# He et al. Table 6 in minutes: one job at a time, and with each of the nine depths run the fastest way
# measured (alone, 4 at once, 4 under MPS), each way's seconds per image costed by depth like cifar-bench.
def fitted(kind):  # None unless measured for every model (one depth's number would stand for all)
    if not all(kind in k for k in sharing.values()):
        return None
    measured = {cifar_depth(m): 1.0 / k[kind]["images_per_second"] for m, k in sharing.items() if cifar_depth(m)}
    return seconds_per_image_in_depth(measured) if measured else None

fits = [f for f in map(fitted, JOBS) if f is not None]
minutes = lambda s: round(TABLE6_STEPS * TABLE6_BATCH * sum(s(d) for d in TABLE6_DEPTHS) / 60, 1)
one_fit = fitted("one")
table6 = {"one_job_at_a_time": one_fit and minutes(one_fit),
          "best_of_measured": fits and minutes(lambda d: min(f(d) for f in fits)) or None}
summary = {
    "row": row and {"steps": steps, "test_acc": row["test/acc"], "val_acc": row.get("val/acc"),
                    "wall_seconds": round(row_wall, 1), "fit_seconds": row["fit_seconds"],
                    "train_images_per_second": row["train_images_per_second"], "device": row["device"],
                    "precision": row["precision"], "note": note},
    "sharing": sharing,
    "mps": mps_note,
    "table6_minutes": table6,
}
(out / "table_row.json").write_text(json.dumps(summary, indent=2) + "\n")
r = summary["row"]
lines = ["ResNet-20 row: skipped" if r is None else (
    f"ResNet-20 row of he2016_table6, {steps} steps on {r['device']} ({r['precision']}): test acc "
    f"{100 * r['test_acc']:.2f}%, wall {r['wall_seconds']:.0f} s, fit {r['fit_seconds']:.0f} s, "
    f"{r['train_images_per_second']:.0f} img/s {note}"), "",
    f"Sharing one GPU (joblib, {', '.join(sharing)}; MPS: {mps_note}), images/s while training:", "",
    "| model | 1 job | 4 jobs | 4 jobs, MPS |", "|---|---|---|---|"]
cell = lambda k, x: "—" if x not in k else f"{k[x]['images_per_second']:,.0f}" + (
    f" ({k[x]['x_one_job']:.2f}x)" if "x_one_job" in k[x] else "")
lines += [f"| {m} | {cell(k, 'one')} | {cell(k, 'four')} | {cell(k, 'four_mps')} |" for m, k in sharing.items()]
t6 = summary["table6_minutes"]
lines += ["", f"He et al. Table 6 estimated: {t6['one_job_at_a_time']} min one job at a time, "
          f"{t6['best_of_measured']} min running each depth the fastest way measured"]
(out / "table_row.md").write_text("\n".join(lines) + "\n")
print((out / "table_row.md").read_text())
PYEOF

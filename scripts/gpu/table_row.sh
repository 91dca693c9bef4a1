#!/usr/bin/env bash
# GPU check for cifar-reproduce: (1) the ResNet-20 row of he2016_table6 (He et al.'s recipe: SGD 0.1,
# batch 128, 45k/5k split, lr /10 at 50% and 75% of the run = 32k/48k of 64k) on the real CIFAR-10 copy
# in $CIFAR_DATA, for ROW_STEPS steps (full recipe: 64000); (2) aggregate training images/s of 4
# concurrent ResNet-20 jobs (joblib launcher, n_jobs=4) against one job, CONC_STEPS steps each.
# Writes $OUT/table_row.json and $OUT/table_row.md (plus the runs' metrics and logs).
#   ROW_STEPS=64000   steps of the table row (0 skips the row: concurrency only)
#   ROW_COMPILE=1     the defaults (inductor kernels, each step replayed as a CUDA graph); on failure the
#                     row reruns eager with ROW_STEPS/4 steps and the failure is reported
#   CONC_STEPS=1500   steps of each concurrency job
#   CONC_EXTRA="model.compile=false"  overrides of the concurrency jobs (no inductor: its compile time
#                     would fall into the first epoch's images/s)
#   GPU_CHECK_TINY=1  CPU, synthetic data, a few steps: checks the script itself
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$REPO"
: "${OUT:?set OUT to the folder for the results}"
export HYDRA_FULL_ERROR=1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ "${GPU_CHECK_TINY:-0}" = "1" ]; then
  DATA="$WORK/data"
  "$PY" -m cifar_resnets.data.synthetic "$DATA" --train 512 --test 256 >/dev/null
  ROW_STEPS=${ROW_STEPS:-8}; CONC_STEPS=${CONC_STEPS:-4}; ROW_COMPILE=${ROW_COMPILE:-0}
  EXTRA=(trainer.accelerator=cpu data.val_size=128 data.eval_batch_size=128 callbacks.progress_bar=null)
else
  DATA=${CIFAR_DATA:?set CIFAR_DATA to the folder holding cifar-10-batches-py}
  ROW_STEPS=${ROW_STEPS:-64000}; CONC_STEPS=${CONC_STEPS:-1500}; ROW_COMPILE=${ROW_COMPILE:-1}
  EXTRA=(callbacks.progress_bar.refresh_rate=200)
fi
COMMON=(experiment=he2016/resnet20 data.root="$DATA" schedule.unit=fraction "schedule.milestones=[0.5,0.75]"
        trainer.max_epochs=-1 "${EXTRA[@]}")

row() {  # $1 steps, $2 compile true|false, $3 run dir
  local graphs=(); [ "$2" = true ] || graphs=(model.compile=false module.cuda_graph=false)
  "$PY" -m cifar_resnets.train "${COMMON[@]}" trainer.max_steps="$1" "${graphs[@]}" hydra.run.dir="$3" \
    >"$3.log" 2>&1
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

conc() {  # $1 seeds, $2 n_jobs, $3 sweep dir
  local s=$(date +%s.%N)
  "$PY" -m cifar_resnets.train -m "${COMMON[@]}" trainer.max_steps="$CONC_STEPS" seed="$1" \
    hydra/launcher=joblib hydra.launcher.n_jobs="$2" trainer.limit_val_batches=0 test_after_fit=false \
    ${CONC_EXTRA-model.compile=false} \
    hydra.sweep.dir="$3" 'hydra.sweep.subdir=seed${seed}' >"$3.log" 2>&1
  awk "BEGIN{print $(date +%s.%N) - $s}"
}
one_wall=$(conc 0 1 "$OUT/one")
four_wall=$(conc 0,1,2,3 4 "$OUT/four")

"$PY" - "$OUT" "$row_wall" "$one_wall" "$four_wall" "$ROW_STEPS" "$ROW_NOTE" <<'PYEOF'
import json, sys
from pathlib import Path
out, row_wall, one_wall, four_wall, steps, note = Path(sys.argv[1]), *map(float, sys.argv[2:5]), int(sys.argv[5]), sys.argv[6]
row_file = out / "row" / "metrics.json"
row = json.loads(row_file.read_text()) if row_file.exists() else None
def jobs(d):
    return [json.loads(p.read_text()) for p in sorted((out / d).glob("seed*/metrics.json"))]
one, four = jobs("one"), jobs("four")
assert len(one) == 1 and len(four) == 4, (len(one), len(four))
images = lambda js: sum(j["steps"] * 128 for j in js)
summary = {
    "row": row and {"steps": steps, "test_acc": row["test/acc"], "val_acc": row.get("val/acc"),
                    "wall_seconds": round(row_wall, 1), "fit_seconds": row["fit_seconds"],
                    "train_images_per_second": row["train_images_per_second"], "device": row["device"],
                    "precision": row["precision"], "note": note},
    "concurrency": {
        "one_job_images_per_second": one[0]["train_images_per_second"],
        "four_jobs_images_per_second": round(sum(j["train_images_per_second"] for j in four), 1),
        "four_jobs_per_job_images_per_second": [j["train_images_per_second"] for j in four],
        "one_job_wall_seconds": round(one_wall, 1), "four_jobs_wall_seconds": round(four_wall, 1),
        "wall_clock_images_per_second_one": round(images(one) / one_wall, 1),
        "wall_clock_images_per_second_four": round(images(four) / four_wall, 1),
    },
}
(out / "table_row.json").write_text(json.dumps(summary, indent=2) + "\n")
r, c = summary["row"], summary["concurrency"]
row_line = "ResNet-20 row: skipped\n" if r is None else (
    f"ResNet-20 row of he2016_table6, {steps} steps on {r['device']} ({r['precision']}): test acc {100*r['test_acc']:.2f}%, "
    f"wall {r['wall_seconds']:.0f} s, fit {r['fit_seconds']:.0f} s, {r['train_images_per_second']:.0f} img/s {note}\n")
(out / "table_row.md").write_text(row_line +
    f"Concurrency (joblib): 1 job {c['one_job_images_per_second']:.0f} img/s; 4 jobs {c['four_jobs_images_per_second']:.0f} "
    f"img/s together (wall-clock incl. start-up: {c['wall_clock_images_per_second_one']:.0f} vs "
    f"{c['wall_clock_images_per_second_four']:.0f})\n")
print((out / "table_row.md").read_text())
PYEOF

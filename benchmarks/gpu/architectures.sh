#!/usr/bin/env bash
# GPU check of the issue-3 architectures: training throughput (images/s, from cifar-train's metrics.json)
# of the CBAM attention ResNet and ResNet-18 (CIFAR stem) on the real CIFAR-10 copy, and each short
# run's test accuracy. Results: $OUT/architectures/{<run>/metrics.json, summary.json, summary.md}.
#
# Data: $CIFAR_DATA (a folder holding cifar-10-batches-py). Tunable: ARCH_EPOCHS (2), ARCH_NUM_TRAIN (20000),
# RUN_TIMEOUT (seconds per run, 150).
# GPU_CHECK_TINY=1: CPU-sized smoke run (synthetic CIFAR-10 when CIFAR_DATA is not set).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_suite
out="${OUT:?set OUT}/architectures"
mkdir -p "$out"
data="${CIFAR_DATA:-}"
run_timeout="${RUN_TIMEOUT:-150}"
[[ "${GPU_CHECK_TINY:-0}" == 1 ]] && run_timeout="${RUN_TIMEOUT:-1800}"  # a busy CPU is slow

if [[ "${GPU_CHECK_TINY:-0}" == 1 ]]; then
  if [[ -z "$data" ]]; then
    data="$out/synthetic"
    "$PY" -c "from cifar_resnets.data.synthetic import write_synthetic_cifar as w; w('$data', 'cifar10', 256, 128)"
  fi
  common=(trainer.accelerator=cpu trainer.max_epochs=1 data.val_size=64 data.num_train=64 data.batch_size=32
          data.eval_batch_size=64 trainer.limit_test_batches=1)
else
  [[ -n "$data" ]] || { echo "architectures.sh: set CIFAR_DATA to a folder with cifar-10-batches-py" >&2; exit 2; }
  common=(trainer.max_epochs="${ARCH_EPOCHS:-2}" data.num_train="${ARCH_NUM_TRAIN:-20000}")
fi

run() {  # run NAME OVERRIDES...: one cifar-train run into $out/NAME, never stopping the script
  local name="$1"; shift
  local t0; t0=$(date +%s)
  echo "== $name: cifar-train $*" | tee -a "$out/log.txt"
  timeout "$run_timeout" "$PY" -m cifar_resnets.cli.train "$@" "${common[@]}" data.root="$data" \
    callbacks.progress_bar=null hydra.run.dir="$out/$name" >> "$out/log.txt" 2>&1
  echo "== $name: rc=$? in $(( $(date +%s) - t0 )) s" | tee -a "$out/log.txt"
}

# The CBAM attention-ResNet recipe (strong augmentation, mixup/cutmix, EMA, clipping) at its own settings, shortened.
run attention_resnet experiment=attention_resnet
# ResNet-18 with the CIFAR stem; one-cycle so that a 2-epoch run gives a meaningful test accuracy.
run resnet18_cifar model=resnet18 schedule=onecycle optim.lr=0.2 optim.weight_decay=5e-4

"$PY" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = {}
for name in ("attention_resnet", "resnet18_cifar"):
    f = out / name / "metrics.json"
    rows[name] = json.loads(f.read_text()) if f.is_file() else {"error": "no metrics.json (see log.txt)"}
keys = ("model", "params", "epochs", "steps", "train_images_per_second", "train_seconds", "test/acc", "device",
        "precision", "error")
summary = {n: {k: r.get(k) for k in keys} for n, r in rows.items()}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
lines = ["| run | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
lines += [f"| {n} | " + " | ".join("" if r[k] is None else str(r[k]) for k in keys) + " |" for n, r in summary.items()]
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY

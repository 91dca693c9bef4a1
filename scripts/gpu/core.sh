#!/usr/bin/env bash
# GPU check of the core suite: the 30-epoch one-cycle ResNet-20 recipe through cifar-train on the
# real CIFAR-10 copy ($CIFAR_DATA), timed end to end; results in $OUT/core/.
# GPU_CHECK_TINY=1 shrinks it to a CPU-sized smoke run.
set -euo pipefail
out="${OUT:?set OUT}/core"
mkdir -p "$out"
extra=()
if [[ "${GPU_CHECK_TINY:-0}" == 1 ]]; then
  extra=(data.num_train=512 data.batch_size=128 data.eval_batch_size=500 trainer.max_epochs=1 trainer.limit_test_batches=2)
fi
start=$(date +%s.%N)
python3 -m cifar_resnets.train experiment=onecycle_resnet20 data.root="${CIFAR_DATA:?}" \
  callbacks.progress_bar=null hydra.run.dir="$out/run" "${extra[@]}" "$@" > "$out/train.log" 2>&1
end=$(date +%s.%N)
python3 - "$out" "$start" "$end" <<'PY'
import json, sys
from pathlib import Path
out, start, end = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
m = json.loads((out / "run" / "metrics.json").read_text())
keys = ["test/acc", "epochs", "fit_seconds", "train_seconds", "train_images_per_second", "precision", "device"]
summary = {k: m.get(k) for k in keys} | {"wall_seconds_incl_startup": round(end - start, 1)}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print("core:", json.dumps(summary))
PY

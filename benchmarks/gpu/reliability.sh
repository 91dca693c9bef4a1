#!/usr/bin/env bash
# GPU check of crash-safe training on CUDA: an uninterrupted run, the same run SIGKILLed halfway
# through a checkpoint write, then SIGTERMed mid-epoch, then finished with the same command
# (ckpt_path=auto), and a divergence (optim.lr=1e6) caught by the divergence guard.
# Results in $OUT/reliability/summary.json (exit codes, steps, whether final metrics match).
# GPU_CHECK_TINY=1 runs it on the CPU (tiny, a few minutes on 2 cores).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_suite
out="${OUT:?set OUT}/reliability"
rm -rf "$out" && mkdir -p "$out"
accel=gpu n_train=4096
[[ "${GPU_CHECK_TINY:-0}" == 1 ]] && accel=cpu n_train=1024
"$PY" -m cifar_resnets.data.synthetic "$out/data" --train $n_train --test 512 > /dev/null
common=(data.root="$out/data" data.val_size=256 data.batch_size=128 data.eval_batch_size=256
  data.loader=gpu trainer.accelerator=$accel trainer.max_epochs=3 trainer.deterministic=true
  callbacks.progress_bar=null callbacks.mid_epoch_checkpoint.every_n_train_steps=5 ckpt_path=auto)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() { "$PY" -m cifar_resnets.cli.train "${common[@]}" "$@" >> "$out/train.log" 2>&1; echo $?; }

rc_straight=$(run hydra.run.dir="$out/straight")
# The test-only checkpoint writer (tests/fault_injection.py) kills the run at an exact save.
faulty() { echo "+trainer.plugins=[{_target_:fault_injection.FaultyCheckpointIO,file:last.ckpt,step:15,$1}]"; }
export PYTHONPATH="$REPO/tests:$PYTHONPATH"
rc_kill=$(run hydra.run.dir="$out/resumed" "$(faulty moment:during)")
rc_term=$(run hydra.run.dir="$out/resumed" "$(faulty signal:TERM)")
rc_finish=$(run hydra.run.dir="$out/resumed")
rc_diverge=$(run hydra.run.dir="$out/diverged" optim.lr=1e6 trainer.log_every_n_steps=50)

"$PY" - "$out" "$rc_straight" "$rc_kill" "$rc_term" "$rc_finish" "$rc_diverge" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
rc = dict(zip(["straight", "sigkill_mid_write", "sigterm", "finish", "diverge"], map(int, sys.argv[2:])))


def metrics(name):
    path = out / name / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


a, b, d = metrics("straight"), metrics("resumed"), metrics("diverged")
keys = ["test/acc", "test/loss", "val/acc", "val/loss", "steps"]
summary = {
    "exit_codes": rc,  # expected: 0, 137 (SIGKILL), 143 (SIGTERM), 0, 1
    "straight": {k: a.get(k) for k in keys + ["device", "status"]},
    "resumed": {k: b.get(k) for k in keys + ["status"]},
    "resumed_equals_straight": all(a.get(k) == b.get(k) for k in keys) and bool(a),
    "diverged": {k: d.get(k) for k in ["status", "step", "epoch", "lr", "last_checkpoint", "error"]},
}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print("reliability:", json.dumps(summary))
PY

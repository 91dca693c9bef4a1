#!/usr/bin/env bash
# One device session for every GPU check, in order of importance, inside TOTAL_S seconds:
#   0. benchmarks/gpu/host_sync_probe.py   which training steps wait for the GPU, and a host-time profile
#                                       (SKIP_PROBE=1 skips it)
#      benchmarks/host_step_time.py        host time per step, Trainer vs raw loop, step replay stubbed
#                                       (SKIP_HOST_TIME=1 skips it)
#   1. benchmarks/gpu/step_graph_check.py  training steps replayed as a CUDA graph end where eager ones do
#                                       (SKIP_STEP_CHECK=1 skips it)
#   2. benchmarks/gpu/bench.sh             images/s (cifar-bench: cifar-train vs the plain PyTorch reference
#                                       loop; raw_loop.py: vs no Lightning; eager steps) and the 30-epoch
#                                       one-cycle ResNet-20 accuracy with and without CUDA graphs
#   3. benchmarks/gpu/table_row.sh         sharing the GPU: 4 concurrent ResNet-20/56 jobs vs one, also under CUDA
#                                       MPS, and Table 6 extrapolated (He et al.'s ResNet-20 row if ROW_STEPS>0)
#   4. benchmarks/gpu/architectures.sh     attention ResNet and ResNet-18 (only with RUN_ARCH=1)
# Expects, in the ignored folder .gpu/: whl/*.whl (hydra-core, omegaconf, ...: ../shared/wheels-gpu),
# cifar10-jpeg.tar.gz and cifar10_from_jpeg.py. The wheels and the suite itself (editable, so that its
# configs are found as the package cifar_resnets.conf) are installed into a venv layered on python3's
# packages (common.sh: install_suite). Everything lands in /tmp/gpu_out and is packed into
# $OUT/results.tgz after each part, so a run cut short still returns what it finished.
set -uo pipefail
source "$(dirname "$0")/common.sh"
cd "$REPO"
: "${OUT:?set OUT}"
export PYTHONUNBUFFERED=1
t0=$(date +%s)
total=${TOTAL_S:-300}
results=/tmp/gpu_out
mkdir -p "$results" "$OUT"
left() { echo $(( total - ($(date +%s) - t0) )); }
pack() {  # results without checkpoints and data (files coming back are capped at 16 MiB)
  tar czf "$OUT/results.tmp.tgz" --exclude='*.ckpt' --exclude='cifar-*-batches-py' --exclude='synthetic' \
    -C "$results" . && mv "$OUT/results.tmp.tgz" "$OUT/results.tgz"
  cp "$results"/*.md "$OUT"/ 2>/dev/null || true
}
(while sleep 15; do pack; done) &  # a run cut short still returns what it measured
packer=$!
trap 'kill $packer 2>/dev/null; pack' EXIT

if [[ "${GPU_CHECK_TINY:-0}" != 1 ]]; then
  install_suite .gpu/whl /tmp/cifar-suite-venv || exit 1
  "$PY" .gpu/cifar10_from_jpeg.py /tmp/cifar --archive .gpu/cifar10-jpeg.tar.gz > /dev/null || exit 1
  export CIFAR_DATA=/tmp/cifar
  nvidia-smi > "$results/nvidia-smi.txt" 2>&1
fi
require_suite
git -C "$REPO" rev-parse --short HEAD > "$results/commit.txt" 2>/dev/null || echo "no git" > "$results/commit.txt"
"$PY" -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__,
  torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')" | tee "$results/versions.md"
echo "setup done at $(( $(date +%s) - t0 )) s" | tee -a "$results/versions.md"

if [[ "${SKIP_PROBE:-0}" != 1 ]]; then
  probe_args=(); [[ "${GPU_CHECK_TINY:-0}" == 1 ]] && probe_args=(--steps 12 --warmup 3 --log-every 4 --batch-size 32)
  timeout 120 "$PY" benchmarks/gpu/host_sync_probe.py "${probe_args[@]}" --data-root "${CIFAR_DATA:-${BENCH_DATA:-}}" \
    --out "$results" > "$results/host_sync_probe.log" 2>&1
  tail -1 "$results/host_sync_probe.log"
  echo "host sync probe done at $(( $(date +%s) - t0 )) s" | tee -a "$results/versions.md"; pack
fi

if [[ "${SKIP_HOST_TIME:-0}" != 1 ]]; then
  host_args=(--batch-size 128 --steps 1000); [[ "${GPU_CHECK_TINY:-0}" == 1 ]] && host_args=(--batch-size 4 --steps 15)
  timeout 90 "$PY" benchmarks/host_step_time.py "${host_args[@]}" --json "$results/host_step_time.json" \
    > "$results/host_step_time.log" 2>&1
  tail -3 "$results/host_step_time.log"
  echo "host step time done at $(( $(date +%s) - t0 )) s" | tee -a "$results/versions.md"; pack
fi

if [[ "${SKIP_STEP_CHECK:-0}" != 1 ]]; then
  timeout 150 "$PY" benchmarks/gpu/step_graph_check.py --data-root "${CIFAR_DATA:-${BENCH_DATA:-}}" \
    --steps "${CHECK_STEPS:-40}" --num-train "${CHECK_NUM_TRAIN:-10000}" --out "$results" > "$results/step_graph_check.log" 2>&1
  tail -3 "$results/step_graph_check.log"
  echo "step graph check done at $(( $(date +%s) - t0 )) s" | tee -a "$results/versions.md"; pack
fi

OUT="$results" BUDGET_S=$(( $(left) - 70 )) STEP_TIMEOUT=${STEP_TIMEOUT:-120} bash benchmarks/gpu/bench.sh
echo "bench done at $(( $(date +%s) - t0 )) s" | tee -a "$results/versions.md"; pack

if (( $(left) > 60 )); then
  [[ "${GPU_CHECK_TINY:-0}" == 1 ]] || export ROW_STEPS=${ROW_STEPS:-0} CONC_STEPS=${CONC_STEPS:-1500}
  OUT="$results" timeout $(( $(left) - 5 )) bash benchmarks/gpu/table_row.sh
  echo "table_row done at $(( $(date +%s) - t0 )) s" | tee -a "$results/versions.md"; pack
fi
if [[ "${RUN_ARCH:-0}" == 1 ]] && (( $(left) > 45 )); then
  OUT="$results" RUN_TIMEOUT=$(( ($(left) - 10) / 2 )) ARCH_EPOCHS=1 ARCH_NUM_TRAIN=20000 bash benchmarks/gpu/architectures.sh
  echo "architectures done at $(( $(date +%s) - t0 )) s" | tee -a "$results/versions.md"; pack
fi
pack

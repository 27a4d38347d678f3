#!/usr/bin/env bash
# GPU readiness check, for a machine with CUDA GPUs (our CI has none):
#   1. the torch build supports this GPU's architecture (sm_XY in torch's arch list);
#   2. per family (PaNeXt, PaNeXt-e, SSD-ISB, encoder-decoder), two training
#      iterations and an evaluation, in float32 and in float16 AMP, on the quick configs;
#   3. the same with 2 processes (DDP, NCCL) when 2 or more GPUs are present;
#   4. inference speed: PaNeXt at 400x600 and SSD-ISB Multi-Shape at 640x640 (randomly
#      initialised models with calibrated BatchNorm; see docs/BENCHMARKS.md for equal load).
#
#   bash tools/gpu_check.sh [OUTPUT_DIR]       (PYTHON=... to pick the interpreter)
# Exits non-zero at the first failure; the logs are under OUTPUT_DIR (default output/gpu_check).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-output/gpu_check}
mkdir -p "$OUT"

GPUS=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
if [ "$GPUS" -lt 1 ]; then
  echo "gpu_check: no CUDA GPU visible to torch; nothing to check" >&2
  exit 1
fi
"$PY" - <<'EOF'
import torch
major, minor = torch.cuda.get_device_capability(0)
arch = f"sm_{major}{minor}"
built = torch.cuda.get_arch_list()
print(f"gpu_check: {torch.cuda.get_device_name(0)} ({arch}), torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, built for {built}")
if arch not in built and f"compute_{major}{minor}" not in built:
    raise SystemExit(f"gpu_check: this torch has no kernels for {arch}; see docs/GETTING_STARTED.md")
EOF

run() {  # name, config, processes, amp
  local name=$1 config=$2 procs=$3 amp=$4
  local dir="$OUT/$name-gpus$procs-amp$amp"
  echo "gpu_check: $name, $procs process(es), float16 AMP $amp"
  "$PY" train_net.py --config-file "$config" --num-gpus "$procs" \
      MODEL.DEVICE cuda SOLVER.MAX_ITER 2 SOLVER.IMS_PER_BATCH $((2 * procs)) \
      SOLVER.AMP.ENABLED "$amp" SOLVER.AMP.PRECISION float16 \
      SOLVER.CHECKPOINT_PERIOD_FRACTION 1.0 DATALOADER.NUM_WORKERS 2 \
      OUTPUT_DIR "$dir" > "$dir.log" 2>&1 || { tail -40 "$dir.log"; exit 1; }
  grep -q "copypaste:" "$dir.log" || { echo "gpu_check: $name did not evaluate"; exit 1; }
}

FAMILIES=(
  "panext configs/quick_schedules/panext_synthetic_cpu.yaml"
  "panext_e configs/quick_schedules/panext_e_synthetic_cpu.yaml"
  "ssd_isb configs/quick_schedules/ssd_isb_ms_synthetic_cpu.yaml"
  "encdec configs/quick_schedules/encdec_proposed_synthetic_cpu.yaml"
)
for family in "${FAMILIES[@]}"; do
  set -- $family
  for amp in False True; do
    run "$1" "$2" 1 "$amp"
  done
  if [ "$GPUS" -ge 2 ]; then
    run "$1" "$2" 2 True
  fi
done

"$PY" tools/benchmark.py --config-file configs/panext_3x.yaml --height 400 --width 600 \
    --calibrate-bn --runs 50 --opts MODEL.DEVICE cuda --output "$OUT/panext_400.json"
"$PY" tools/benchmark.py --config-file configs/ssd_isb/ssd_isb_ms_mn1.0_fcn8_person.yaml \
    --height 640 --width 640 --calibrate-bn --runs 50 --opts MODEL.DEVICE cuda \
    --output "$OUT/ssd_isb_640.json"
echo "gpu_check: all checks passed; logs and JSON in $OUT"

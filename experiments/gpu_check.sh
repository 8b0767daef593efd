#!/usr/bin/env bash
# The GPU check, in one go on a machine with an NVIDIA GPU and a CUDA build of torch:
#   bash experiments/gpu_check.sh [OUT]
# 1. the device-sensitive tests (tests/test_devices.py runs its CUDA cases when torch sees a GPU;
#    tests/test_distributed.py checks data-parallel training with gloo, as on the CPU);
# 2. experiments/bench_scale.py (n-body throughput on CPU and GPU, training on CPU and GPU);
# 3. experiments/bench_envs.py (env-steps per second; it runs on the CPU, here the GPU machine's).
# Tables and figures go to OUT (default: experiments/results and figures), a log to OUT/gpu_check.log.
set -euo pipefail
cd "$(dirname "$0")/.."
results=${1:-experiments/results}
figures=${1:-figures}
mkdir -p "$results" "$figures"
export PYTHONUNBUFFERED=1
python - <<'PY'
try:
    import torch
except ImportError:
    raise SystemExit("gpu_check: this python has no torch; install a CUDA build of torch first") from None
if not torch.cuda.is_available():
    raise SystemExit("gpu_check: torch sees no GPU (torch.cuda.is_available() is False); nothing to check here")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPU: {torch.cuda.get_device_name(0)}")
PY
# physode itself, without touching the installed torch (its other requirements must be there)
python -c "import physode.envs" 2>/dev/null || python -m pip install -q --no-deps -e .
{
  python -m pytest -q -rs tests/test_devices.py tests/test_distributed.py
  python experiments/bench_scale.py --results "$results" --figures "$figures"
  python experiments/bench_envs.py --results "$results" --figures "$figures"
} 2>&1 | tee "$results/gpu_check.log"

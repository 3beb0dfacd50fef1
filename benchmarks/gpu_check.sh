#!/usr/bin/env bash
# The GPU validation run, for one NVIDIA GPU and under 10 minutes in all (the step limits add up to 740 s): the card, the CUDA build, selftest on
# cuda, the CUDA and Triton tests, and the op benchmarks on the card. Everything goes into one folder
# (default gpu-check/); summary.txt lists each step with its exit code and seconds. Steps never stop the run:
# a failed step is recorded and the next one starts.
#
#   bash benchmarks/gpu_check.sh [OUT]          # from the repository root; uses the source tree, no install
#
# The training commands have no --device yet (issue "Train on any device"), so no training runs here.
set -u
cd "$(dirname "$0")/.."
OUT="${1:-gpu-check}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export MAX_JOBS="${MAX_JOBS:-16}" TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export FASTGAN_BUILD_DIR="${FASTGAN_BUILD_DIR:-$PWD/$OUT/build}"
: > "$OUT/summary.txt"

step() {  # step NAME SECONDS COMMAND...: runs COMMAND with a time limit, output to OUT/NAME.txt
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.txt" 2>&1
  rc=$?
  echo "$name: exit $rc, $(( $(date +%s) - start )) s (limit $limit s)" | tee -a "$OUT/summary.txt"
}

step card 30 bash -c 'nvidia-smi; nvcc --version; python -c "import sys, torch, triton; print(sys.version); print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name()); print(triton.__version__)"'
step build 300 python -m fastgan info
step selftest 60 python -m fastgan selftest --device cuda
step tests 150 python -m pytest -q -x -p no:cacheprovider tests/test_maxout.py tests/test_gan_loss.py \
  tests/test_parzen.py tests/test_dtypes.py tests/test_dispatch.py tests/test_linear.py -k "cuda"
# at most 0.25 s of rounds per benchmark (at least 3), so the ~70 of them fit the limit
step benchmarks 200 python -m pytest -q -p no:cacheprovider benchmarks --benchmark-only --benchmark-max-time=0.25 \
  --benchmark-min-rounds=3 --benchmark-json "$OUT/benchmarks.json" --benchmark-columns=median,iqr,rounds
echo "wrote $OUT/ ($(ls "$OUT" | tr '\n' ' '))"

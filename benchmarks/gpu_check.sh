#!/usr/bin/env bash
# Chapter 08's GPU measurements and GPU-only tests in one go, written to one folder.
#
#   benchmarks/gpu_check.sh [OUT_DIR] [--fast]
#
# Run from the repository root on a machine with a CUDA GPU (ganlib runs from the source tree; the
# machine needs torch with CUDA, numpy, tqdm, Pillow, matplotlib, and pytest for the tests). MNIST is
# read from $GANLIB_DATA (a folder with the four original .gz files), else ganlib's usual places.
# OUT_DIR (default: $OUT, else gpu_check_out) receives:
#   environment.json          date, GPU, torch and CUDA versions
#   tests.txt, tests.xml      tests/test_train_speed.py (its CUDA tests run only where torch sees a GPU)
#   dcgan_throughput_cuda.*   benchmarks/dcgan_throughput.py on CUDA, 64 and 28 px, every configuration:
#                             images/s, ratio to the reference, GPU busy fraction, a "best" line
#   cli_all_options.txt       the all-options command (bf16 + channels_last + compile at 64 px), 5 steps
#   summary.txt               one line per part: passed, failed or skipped
# --fast leaves out the torch.compile configurations of the benchmark (the slowest to start) and times
# 20 steps instead of 40. Without a GPU the CUDA parts are skipped (the CPU tests still run) and the
# exit code is 0 unless a test fails. PYTHON chooses the interpreter (default: python3).
set -u
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check_out}"
fast=0
for arg in "$@"; do
  case "$arg" in
    --fast) fast=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) out="$arg" ;;
  esac
done
py="${PYTHON:-python3}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
summary="$out/summary.txt"
: > "$summary"
status=0
note() { echo "$*" | tee -a "$summary"; }

"$py" - "$out/environment.json" <<'EOF'
import json, platform, sys
from datetime import datetime, timezone
import torch
env = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
       "torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
       "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
open(sys.argv[1], "w").write(json.dumps(env, indent=1) + "\n")
print("environment:", env)
EOF
cuda=$("$py" -c "import torch; print(int(torch.cuda.is_available()))")

# ---- the tests (CUDA ones skip themselves without a GPU)
if "$py" -c "import pytest" 2>/dev/null; then
  if "$py" -m pytest -q -p no:cacheprovider -rs tests/test_train_speed.py --junitxml="$out/tests.xml" \
      > "$out/tests.txt" 2>&1; then
    note "tests: passed ($(tail -n 1 "$out/tests.txt"))"
  else
    note "tests: FAILED ($(tail -n 1 "$out/tests.txt")); see tests.txt"
    status=1
  fi
else
  note "tests: skipped, pytest is not installed for $py"
fi

if [ "$cuda" != "1" ]; then
  note "benchmark: skipped, torch sees no CUDA GPU here"
  note "all-options command: skipped, torch sees no CUDA GPU here"
  exit $status
fi

# ---- the benchmark: both sizes, every configuration (on CUDA the CUDA-graph ones too)
steps=40
options=()
if [ "$fast" = 1 ]; then
  steps=20
  options=(--options none amp channels_last cuda_graphs graphs_amp)
fi
if "$py" benchmarks/dcgan_throughput.py --device cuda --sizes 64 28 --steps "$steps" --warmup 5 "${options[@]}" \
    --json "$out/dcgan_throughput_cuda.json" > "$out/dcgan_throughput_cuda.txt" 2>&1; then
  note "benchmark: done; $(grep '^best at' "$out/dcgan_throughput_cuda.txt" | tr '\n' ' ')"
else
  note "benchmark: FAILED; see dcgan_throughput_cuda.txt"
  status=1
fi

# ---- the combination that crashed in the G step's backward pass, through the command line
if "$py" -m ganlib train --model dcgan --data mnist --image-size 64 --amp --channels-last --compile \
    --device cuda --steps 5 --out "$out/cli_all_options" --overwrite > "$out/cli_all_options.txt" 2>&1; then
  note "all-options command (--amp --channels-last --compile, 64 px, 5 steps): trained"
else
  note "all-options command: FAILED; see cli_all_options.txt"
  status=1
fi
exit $status

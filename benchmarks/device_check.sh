#!/usr/bin/env bash
# The GPU figures of benchmarks/RESULTS.md in one command on a lent device machine:
#   fewshot     benchmarks/fewshot_device.py, about 3 minutes: the few-shot half (teacher labelling, student
#               distillation) at the GPU configuration's shapes on the GPU in fp32 and bf16 against the CPU, and a
#               digits accuracy check (10 episodes) that the three settings agree; exits 1 if one disagrees.
#   specialize  benchmarks/specialize.py, about 10 minutes: faithful mode against batched bf16 mode with a compiled
#               UNet, Stable Diffusion 1.5 shapes, random weights.
#   all         both, the short few-shot part first (the default); the exit status is the first failing part's.
#
#   bash benchmarks/device_check.sh [all|fewshot|specialize] [ARGS...]
#
# Each part writes $OUT (or outputs/device)/<part>.{log,json}. ARGS go to specialize.py (all, specialize) or to
# fewshot_device.py (fewshot). The device image has torch, timm and transformers but not diffusers or pydantic (and
# perhaps not pyarrow, fsspec or scikit-learn, which the few-shot part's store and digits need): put their wheels in
# .whl/ (pip download --only-binary=:all: --python-version 3.12 --no-deps -d .whl diffusers pydantic pydantic-core
# annotated-types typing-inspection importlib-metadata pyarrow fsspec scikit-learn joblib threadpoolctl) and carry
# .whl with the command. A module still missing is named before any part starts.
set -euo pipefail
part=all
case "${1:-}" in
  all | fewshot | specialize) part=$1; shift ;;
esac
out=${OUT:-outputs/device}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # the scripts import tint_core from this checkout
if ! python3 -c "import diffusers, pydantic" 2>/dev/null && [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
missing=$(python3 - <<'PY'
import importlib.util
needed = ["torch", "timm", "diffusers", "pydantic", "pyarrow", "fsspec", "sklearn", "safetensors", "yaml"]
print(" ".join(name for name in needed if importlib.util.find_spec(name) is None))
PY
)
if [ -n "$missing" ]; then
  echo "device_check.sh: missing Python modules: $missing (add their wheels to .whl/, see the header)" >&2
  exit 2
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"; } | tee "$out/gpu.txt"

fewshot() {
  python3 -u benchmarks/fewshot_device.py --json "$out/fewshot.json" "$@" 2>&1 | tee "$out/fewshot.log"
}

specialize() {
  python3 -u benchmarks/specialize.py --backbone sd15-random --precision bf16 --compile \
    --ti-steps 20 --images 64 --batch-size 32 "$@" --json "$out/specialize.json" 2>&1 | tee "$out/specialize.log"
}

case $part in
  fewshot) fewshot "$@" ;;
  specialize) specialize "$@" ;;
  all)
    status=0
    fewshot || status=$?  # a disagreement or a failure still leaves the specialisation figures to measure
    specialize "$@" || { rc=$?; [ "$status" -ne 0 ] || status=$rc; }
    exit "$status"
    ;;
esac

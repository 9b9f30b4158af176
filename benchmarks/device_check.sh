#!/usr/bin/env bash
# The GPU figures of benchmarks/RESULTS.md in one command on a lent device machine (about 10 minutes):
# faithful mode against batched bf16 mode with a compiled UNet, Stable Diffusion 1.5 shapes, random weights.
#
#   bash benchmarks/device_check.sh            # writes $OUT (or outputs/device)/specialize.{log,json}
#
# The device image has torch and transformers but not diffusers or pydantic: put their wheels in .whl/
# (pip download --only-binary=:all: --python-version 3.12 --no-deps -d .whl diffusers pydantic pydantic-core
# annotated-types typing-inspection importlib-metadata) and carry .whl with the command.
set -euo pipefail
out=${OUT:-outputs/device}
mkdir -p "$out"
if ! python3 -c "import diffusers, pydantic" 2>/dev/null && [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"; } | tee "$out/gpu.txt"
python3 -u benchmarks/specialize.py --backbone sd15-random --precision bf16 --compile \
  --ti-steps 20 --images 64 --batch-size 32 "$@" --json "$out/specialize.json" 2>&1 | tee "$out/specialize.log"

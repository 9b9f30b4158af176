#!/usr/bin/env bash
# Creates the work pools, the GPU limits and the crashed-run automation on the server at PREFECT_API_URL, then
# deploys every flow of deployments/prefect.yaml. Idempotent: existing pools and the automation are updated.
#
#   PREFECT_API_URL=http://127.0.0.1:4200/api TINT_STORE=s3://bucket/tint bash deployments/setup.sh [GPU_POOL_TYPE]
#
# GPU_POOL_TYPE: process (default: one worker per GPU on this host), docker or kubernetes (their workers need
# prefect-docker or prefect-kubernetes installed). GPUS: how many units may run at once in the GPU pool (default 1).
# PYTHON: the Python that has Prefect, the one the `prefect` command runs on (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
gpu_type="${1:-process}"
: "${TINT_STORE:?set TINT_STORE to a store every worker reaches, e.g. s3://bucket/tint}"

# Pools, the GPU limit and the automation, in one process (server_setup.py names the commands it stands for).
"${PYTHON:-python3}" deployments/server_setup.py "$gpu_type" "${GPUS:-1}"

prefect --no-prompt deploy --all --prefect-file deployments/prefect.yaml

#!/usr/bin/env bash
# Creates the work pools, the GPU limits and the crashed-run automation on the server at PREFECT_API_URL, then
# deploys every flow of deployments/prefect.yaml. Idempotent: existing pools and the automation are updated.
#
#   PREFECT_API_URL=http://127.0.0.1:4200/api TINT_STORE=s3://bucket/tint bash deployments/setup.sh [GPU_POOL_TYPE]
#
# GPU_POOL_TYPE: process (default: one worker per GPU on this host), docker or kubernetes (their workers need
# prefect-docker or prefect-kubernetes installed). GPUS: how many units may run at once in the GPU pool (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
gpu_type="${1:-process}"
: "${TINT_STORE:?set TINT_STORE to a store every worker reaches, e.g. s3://bucket/tint}"

pool() {  # name type template
  if prefect work-pool inspect "$1" >/dev/null 2>&1; then
    prefect work-pool update "$1" --base-job-template "$3"
  else
    prefect work-pool create "$1" --type "$2" --base-job-template "$3"
  fi
}
pool tint-cpu process deployments/pools/process.json
pool tint-gpu "$gpu_type" "deployments/pools/$gpu_type.json"
prefect work-pool set-concurrency-limit tint-gpu "${GPUS:-1}"

prefect --no-prompt automation delete tint-crashed-runs >/dev/null 2>&1 || true  # absent the first time
prefect automation create --from-file deployments/automations/crashed-runs.yaml

prefect --no-prompt deploy --all --prefect-file deployments/prefect.yaml

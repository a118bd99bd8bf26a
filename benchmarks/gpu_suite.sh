#!/usr/bin/env bash
# The GPU suite (benchmarks/gpu_suite.py); arguments pass through unchanged.
set -euo pipefail
exec "${PYTHON:-python}" "$(dirname "$0")/gpu_suite.py" "$@"

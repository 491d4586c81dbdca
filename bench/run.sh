#!/usr/bin/env bash
# Runs the benchmark with the project's virtualenv; arguments go to bench/run.py (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m bench.run "$@"

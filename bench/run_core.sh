#!/usr/bin/env bash
# One invocation of the core benchmark (floor vs Threadline); see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/core.py "$@"

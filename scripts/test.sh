#!/usr/bin/env bash
# One command: set up (FUSE library, .venv with test dependencies) and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest -q -rs "$@"

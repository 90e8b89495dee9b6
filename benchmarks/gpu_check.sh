#!/usr/bin/env bash
# GPU check: AMP training with the debugger hook, the feature cache and the endpoint through the
# real CLI, with their figures and the GPU's name (see benchmarks/gpu_check.py).
#   benchmarks/gpu_check.sh [--device cpu] [--keep DIR]
# Python: $PYTHON, else the repository's .venv, else python3. Runs this checkout's code.
# Exit status: 0 measured; 3 no CUDA device visible (one line, nothing measured); 1 a step failed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" "$ROOT/benchmarks/gpu_check.py" "$@"

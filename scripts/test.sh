#!/usr/bin/env bash
# The whole check, as CI runs it: set-up, lint, types, schema lint, codegen drift, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy (strict, package)"
mypy
echo "== buf lint"
buf lint
echo "== damestoilet lint schemas"
damestoilet lint schemas
echo "== damestoilet generate schemas --check (codegen drift)"
damestoilet generate schemas --out codegen --check
echo "== pytest"
python3 -m pytest -q "$@"

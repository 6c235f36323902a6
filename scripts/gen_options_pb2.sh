#!/usr/bin/env bash
# Regenerates the committed options_pb2.py/.pyi from options.proto with the pinned grpcio-tools
# (its gencode version is what pyproject's protobuf floor is set to). Run after editing the
# .proto; tests/test_proto_loader.py fails when the committed files drift from a fresh run.
# Usage: bash scripts/gen_options_pb2.sh [OUT_DIR]   (default: the package's proto folder)
set -euo pipefail
cd "$(dirname "$0")/.."
src=damestoilet_contracts/proto
out="${1:-$src}"
well_known="$(python3 -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
python3 -m grpc_tools.protoc \
    --proto_path="$src" --proto_path="$well_known" \
    --python_out="$out" --pyi_out="$out" \
    damestoilet/v1/options.proto

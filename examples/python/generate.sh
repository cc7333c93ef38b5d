#!/usr/bin/env bash
# Generates the Python client (protobuf + grpcio) from the repository's buf module into $1
# (default: ./gen). Needs Debian's protobuf-compiler, protobuf-compiler-grpc and python3-grpcio.
# It reads the buf-built descriptor set (generated/kasmina.binpb), so the client is generated from
# exactly the contract the server serves, well-known imports included.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/gen}"
descriptors="$here/../../generated/kasmina.binpb"
mkdir -p "$out"
protoc --descriptor_set_in="$descriptors" \
  --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  esper/leyline/v1/leyline.proto esper/kasmina/v1/kasmina.proto
# Python packages for the generated modules.
find "$out/esper" -type d -exec touch {}/__init__.py \;

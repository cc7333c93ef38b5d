#!/usr/bin/env bash
# Debian packages the service and its test suite need, in one list (README quick start, CI).
#   scripts/install-deps.sh            everything the whole test suite uses
#   scripts/install-deps.sh --runtime  only what `npm install` needs to build better-sqlite3
#                                      from source where no prebuilt binary can be fetched
# Runs `apt-get update` first, installs only what is missing; needs root (or sudo).
set -euo pipefail

# g++, make and python3: node-gyp compiles better-sqlite3 (the SQLite state store).
RUNTIME="g++ make python3"
# redis-server: bus tests · etcd-server, etcd-client: replica tests · prometheus: scrape and
# dashboard test · protoc, grpc_python_plugin: Python stubs · python3-grpcio, -protobuf, -torch,
# -pytest, -pip, -setuptools, -venv: the kasmina-client package and its tests · openssl: TLS test
# certificates · sqlite3: inspecting the state file.
TEST="redis-server etcd-server etcd-client prometheus protobuf-compiler protobuf-compiler-grpc \
python3-grpcio python3-protobuf python3-torch python3-pytest python3-pip python3-setuptools python3-venv \
openssl sqlite3"

packages="$RUNTIME"
[ "${1:-}" = "--runtime" ] || packages="$RUNTIME $TEST"

missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -z "$missing" ]; then
  echo "Debian packages: all present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "Debian packages installed:$missing"

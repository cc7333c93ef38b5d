#!/usr/bin/env bash
# The Python client's suite (clients/python/tests) against the built server: kasmina-client is
# installed offline into a throwaway venv that sees Debian's grpcio, protobuf and torch
# (--no-index proves the install needs no network), then pytest runs. `npm test` calls this
# after vitest; it expects `npm run build` to have run (npm's pretest does it).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q --no-index ./clients/python
# set -e fails on any pytest exit but 0, including 5 ("no tests collected").
KASMINA_CLIENT_INSTALLED=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider clients/python/tests

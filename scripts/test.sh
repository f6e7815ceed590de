#!/usr/bin/env bash
# Installs what the tests need and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh test

echo "== go vet"
go vet ./...

echo "== go test (race detector on)"
# Packages run one at a time: the desktop tests start real X servers and
# XFCE sessions, and two cores are shared.
go test -race -count=1 -p 1 -timeout 20m ./...

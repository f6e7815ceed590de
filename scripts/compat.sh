#!/usr/bin/env bash
# Runs the E2B compatibility suite: the unmodified npm packages e2b and
# @e2b/desktop (pinned in compat/e2b/package-lock.json) against a real
# `cubicle serve` that the tests start (root; it waits for the host's
# server lock). Needs node >= 20.18.1 and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "compat: node and npm are needed (apt-get install nodejs npm)" >&2
	exit 1
fi
echo "== build bin/cubicle"
mkdir -p bin
CGO_ENABLED=0 go build -o bin/cubicle ./cmd/cubicle

echo "== npm ci (compat/e2b)"
cd compat/e2b
npm ci --no-audit --no-fund --loglevel=error

echo "== E2B SDK compatibility (node --test)"
CUBICLE_BIN="$PWD/../../bin/cubicle" exec node --test --test-concurrency=1 test/*.test.mjs

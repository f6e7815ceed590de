#!/usr/bin/env bash
# Installs what Cubicle needs, builds it and runs the server: the API, the
# proxy into sandboxes and their lifecycle. The first start builds the
# default "desktop" template (a few minutes, with progress). Prints the URL
# and an API key. Stop it with Ctrl-C; sandboxes keep running and the next
# start adopts them. Settings: LISTEN (default 127.0.0.1:8080), STATE_DIR
# (default /var/lib/cubicle).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "cubicle: the server makes namespaces, cgroups and network interfaces, so it runs as root: sudo $0" >&2
	exit 1
fi

scripts/deps.sh runtime
echo "cubicle: building"
mkdir -p bin
CGO_ENABLED=0 go build -o bin/cubicle ./cmd/cubicle

listen="${LISTEN:-127.0.0.1:8080}"
state="${STATE_DIR:-/var/lib/cubicle}"
if [ -f "$state/cubicle.db" ]; then
	# Not the first start: the server prints no key, so make one now.
	key=$(bin/cubicle keys create --state-dir "$state" operator)
	echo "cubicle: a new API key for this run (list them: bin/cubicle keys ls):"
	echo
	echo "    $key"
	echo
fi
exec bin/cubicle serve --listen "$listen" --state-dir "$state"

#!/usr/bin/env bash
# Installs what the tests need and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh test
if [ "$(id -u)" -eq 0 ]; then
	# Every XFCE session holds a few inotify instances; the default of 128
	# per user is shared by all the desktops the tests start.
	sysctl -q -w fs.inotify.max_user_instances=1024
else
	echo "cubicle: not root: the tests of sandboxes, the server and other users' desktops will be skipped (run as root for all of them)" >&2
fi

echo "== npm ci (compat/mcp: the npm MCP client the Go tests drive)"
npm ci --prefix compat/mcp --no-audit --no-fund --loglevel=error

echo "== go vet"
go vet ./...

echo "== go test (race detector on)"
# Packages run one at a time: the desktop tests start real X servers and
# XFCE sessions, the server tests real sandboxes, and two cores are shared.
# The first run on a machine also builds the desktop template (debootstrap,
# a few minutes) into /var/lib/cubicle/templates; later runs reuse it.
go test -race -count=1 -p 1 -timeout 40m ./...

echo "== E2B SDK compatibility"
scripts/compat.sh

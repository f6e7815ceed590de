#!/usr/bin/env bash
# Installs what Cubicle needs, builds it, and runs a desktop with its API.
# Stop it with Ctrl-C. Settings: DISPLAY_NUM (default 1), LISTEN
# (default 127.0.0.1:49983), RESOLUTION (default 1024x768).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh runtime
echo "cubicle: building"
mkdir -p bin
CGO_ENABLED=0 go build -o bin/cubicle ./cmd/cubicle

display=":${DISPLAY_NUM:-1}"
listen="${LISTEN:-127.0.0.1:49983}"
token="${CUBICLE_AGENT_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export CUBICLE_AGENT_TOKEN="$token"

bin/cubicle agent --display "$display" --listen "$listen" --resolution "${RESOLUTION:-1024x768}" &
agent=$!
trap 'kill -TERM $agent 2>/dev/null; wait $agent' INT TERM EXIT

export CUBICLE_AGENT_URL="http://$listen" CUBICLE_TOKEN="$token"
if bin/cubicle ready --wait 120s >/dev/null; then
	cat <<MSG

cubicle: desktop $display is ready
  API:        http://$listen   (OpenAPI: http://$listen/openapi.yaml)
  token:      $token
  try:        export CUBICLE_AGENT_URL=http://$listen CUBICLE_TOKEN=$token
              bin/cubicle screenshot -o shot.png
              bin/cubicle launch xfce4-terminal && bin/cubicle type 'echo hello' && bin/cubicle key enter
  stop:       Ctrl-C

MSG
else
	echo "cubicle: the desktop did not become ready; see the log above" >&2
fi
wait $agent

#!/usr/bin/env bash
# Installs the Debian packages Cubicle needs. Usage: scripts/deps.sh runtime|test
# Packages already present are not fetched again, so a second run is quick.
set -euo pipefail

runtime=(
	xvfb xfce4
	xfce4-terminal dbus-x11 dbus x11vnc x11-utils x11-xserver-utils xdg-utils
	libgtk-3-bin firefox-esr fonts-dejavu-core procps
	ca-certificates debootstrap e2fsprogs util-linux iproute2 novnc
)
test_only=(
	xdotool scrot xterm busybox-static chromium
)

case "${1:-runtime}" in
runtime) pkgs=("${runtime[@]}") ;;
test) pkgs=("${runtime[@]}" "${test_only[@]}") ;;
*) echo "usage: $0 runtime|test" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "cubicle: these Debian packages are missing: ${missing[*]}" >&2
	echo "cubicle: run this script as root (sudo $0 $*) to install them" >&2
	exit 1
fi
echo "cubicle: installing ${#missing[@]} Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "cubicle: packages installed"

#!/bin/sh
# install-deps.sh - make sure the Debian packages dfreconcile builds and tests
# with are installed. Installs what is missing when run as root; otherwise
# prints the exact command to run and fails.
set -eu

PACKAGES="gcc make pkg-config libcurl4-openssl-dev libjson-c-dev libsqlite3-dev
libconfig-dev libcmocka-dev python3 python3-pytest sqlite3 systemd chromium"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "dfreconcile: missing Debian packages:$missing" >&2
	echo "run as root:  $cmd" >&2
	exit 1
fi
echo "installing:$missing" >&2
sh -c "$cmd" >&2

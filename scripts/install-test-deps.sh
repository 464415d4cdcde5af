#!/bin/sh
# install-test-deps.sh - the Debian packages only the tests need beyond
# install-deps.sh: chromium, to render the HTML report headless
# (tests/e2e/test_reports_html.py). Installs what is missing when run as
# root; otherwise prints the exact command to run and fails.
set -eu

PACKAGES="chromium"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "dfreconcile: missing Debian packages for the tests:$missing" >&2
	echo "run as root:  $cmd" >&2
	exit 1
fi
echo "installing:$missing" >&2
sh -c "$cmd" >&2

#!/bin/sh
# install-prism.sh - installs Stoplight Prism (the OpenAPI validator the
# end-to-end tests put in front of the GHL simulator) under build/prism,
# pinned, from npm. Idempotent: does nothing when the pinned version is
# there. Exits 0 either way; without node/npm or the registry it says so
# and the tests run without the validation (tests/prism/gate.py).
PRISM_VERSION=5.16.0
here=$(cd "$(dirname "$0")/.." && pwd)
dest=${PRISM_DIR:-$here/build/prism}
bin=$dest/node_modules/.bin/prism

if [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null)" = "$PRISM_VERSION" ]; then
	exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
	echo "install-prism: node/npm not found: the GHL official-spec validation (Prism) will be SKIPPED" >&2
	exit 0
fi
mkdir -p "$dest"
[ -f "$dest/package.json" ] || echo '{"private": true}' > "$dest/package.json"
echo "install-prism: installing @stoplight/prism-cli@$PRISM_VERSION into $dest" >&2
if ! npm install --prefix "$dest" --no-audit --no-fund --loglevel=error \
	"@stoplight/prism-cli@$PRISM_VERSION" >&2; then
	echo "install-prism: npm install failed: the GHL official-spec validation (Prism) will be SKIPPED" >&2
	exit 0
fi
exit 0

#!/bin/sh
# tests/browser/run.sh [BUILD-DIR] -- the demo page in headless Chromium.
#
# Installs what the test needs when it is missing (Debian's chromium; node and npm; the
# locked playwright-core into tests/browser/node_modules, not saved anywhere else), then
# runs test_demo_page.py against BUILD-DIR's roomd (default: build). The screenshot goes
# to BUILD-DIR/demo-page.png.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$top/${1:-build}
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
apt_install() {
    echo "tests/browser/run.sh: installing $*"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" ||
        { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            $sudo apt-get install -y -qq --no-install-recommends "$@"; }
}
[ -x /usr/bin/chromium ] || apt_install chromium
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
(cd "$here" && npm install --no-save --no-audit --no-fund --loglevel=error)
ROOMD=$build/src/roomd SCREENSHOT=$build/demo-page.png python3 "$here/test_demo_page.py"
ROOMD=$build/src/roomd python3 "$here/test_tls_page.py"

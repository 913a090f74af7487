#!/usr/bin/env bash
# Idempotent setup for tests/notebooks/test_notebooks_browser.py: Debian chromium, playwright-core (npm)
# next to this script, and the widget manager the static pages embed (npm, notebooks/pages/).
# Browser downloads (`playwright install`) do not work offline; playwright-core drives the Debian binary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ ! -x /usr/bin/chromium ]; then
    sudo_cmd=""
    if [ "$(id -u)" != "0" ]; then sudo_cmd="sudo"; fi
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
    npm install --prefix "$here" --no-audit --no-fund --silent >/dev/null  # as pinned in package.json
fi
pages="$here/../../../notebooks/pages"
if [ ! -f "$pages/node_modules/@jupyter-widgets/html-manager/dist/embed.js" ]; then
    npm install --prefix "$pages" --no-audit --no-fund --silent >/dev/null  # as pinned in its package.json
fi
echo "browser setup ok: $(/usr/bin/chromium --version 2>/dev/null || echo chromium?) / playwright-core $(node -p "require('$here/node_modules/playwright-core/package.json').version")"

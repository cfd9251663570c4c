#!/usr/bin/env bash
# Install Debian's chromium + chromedriver for the browser tests, when missing and possible.
set -u
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing chromium and chromium-driver (Debian packages) for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 \
    || echo "could not install chromium; browser tests will skip (or fail under CANVASFLOW_REQUIRE_SERVICES=1)"
else
  echo "chromium/chromedriver missing: install them to run the browser tests"
fi
exit 0

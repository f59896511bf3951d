#!/usr/bin/env bash
# System packages the test suite needs beyond pip: headless Chromium (+ chromedriver) for tests/test_dashboard.py,
# which opens optuna-dashboard in a real browser. Debian/Ubuntu, as root; without them that test is skipped.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "chromium already installed"
    exit 0
fi
SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium chromium-driver

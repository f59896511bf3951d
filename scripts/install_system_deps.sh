#!/usr/bin/env bash
# System packages the test suite needs beyond pip (Debian/Ubuntu, as root or with sudo):
#   chromium, chromium-driver  tests/test_dashboard.py opens optuna-dashboard in a real headless browser
#   openssh-server, rsync      tests/test_cluster.py brings up a `local`-provider Ray cluster over SSH on loopback
# Packages already present are left alone; without them those tests skip with a reason.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium chromium-driver)
{ command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; } || missing+=(openssh-server)
command -v rsync >/dev/null 2>&1 || missing+=(rsync)
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages already installed"
    exit 0
fi
SUDO=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

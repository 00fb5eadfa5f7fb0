#!/usr/bin/env bash
# Installs Debian's headless Chromium and its WebDriver (for the dashboard browser test),
# idempotently: does nothing when /usr/bin/chromium and /usr/bin/chromedriver already exist.
# Needs root (or sudo) and apt-get; on other systems it says so and exits 0, so that setup
# goes on and the browser test skips itself.
set -euo pipefail

say() { printf '\033[1;34m[setup-browser]\033[0m %s\n' "$*" >&2; }

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  say "chromium and chromedriver present"; exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  say "no apt-get: install chromium + chromedriver yourself (the dashboard browser test skips)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    say "not root and no sudo: skipping chromium (the dashboard browser test skips)"; exit 0
  fi
fi
say "installing chromium + chromium-driver with apt-get"
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  chromium chromium-driver >&2
say "chromium: $(chromium --version 2>/dev/null || echo '?')"

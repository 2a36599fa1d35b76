#!/usr/bin/env bash
# Installs everything the test suite needs: the venv with test extras, Debian's Chromium for the
# browser tests and wrk (the C load generator of the bench's write scenarios), and the official
# Parse JS SDK for the API compatibility script.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
# The Python image's pip (23.2) mis-resolves extras that name extras; a current pip does not.
.venv/bin/pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v haproxy >/dev/null 2>&1 || missing="$missing haproxy"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    # shellcheck disable=SC2086 - the list is word-split on purpose
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "install.sh: missing Debian packages:$missing; run: sudo apt-get install -y$missing" >&2
    exit 1
  fi
fi
if [ -f tests/parse_sdk/package.json ]; then
  npm ci --prefix tests/parse_sdk --no-audit --no-fund --silent
fi
npm ci --prefix tests/graphql_client --no-audit --no-fund --silent
# axe-core, injected into each page by tests/e2e/test_accessibility.py (WCAG 2.1 AA).
npm ci --prefix tests/accessibility --no-audit --no-fund --silent

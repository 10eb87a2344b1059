#!/usr/bin/env bash
# Usage: scripts/test.sh [extra cargo test args...]
#   e.g. scripts/test.sh -- --nocapture
#
# The project's one test command, for a fresh Debian machine and for CI
# (root, CI=true, no stdin): provisions the MySQL and MariaDB servers the
# tests start (cached after the first run), then runs every test target.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

# rustup installs into ~/.cargo/bin, which a non-login CI shell may not have
# on its PATH.
if ! command -v cargo >/dev/null && [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
    PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi

scripts/provision.sh </dev/null
exec cargo test --locked --all-targets "$@" </dev/null

#!/usr/bin/env bash
# Usage: scripts/test.sh [extra cargo test args...]
#   e.g. scripts/test.sh -- --nocapture
#
# The project's one test command, for a fresh Debian machine and for CI
# (root, CI=true, no stdin): provisions the MySQL and MariaDB servers the
# tests start and the archive tests' Python environment (both cached after the
# first run), then runs every test target, then
# the benchmark's small variant (scripts/bench.sh --size 20000 --check, with the
# builds the tests just made; no timing is asserted, only that every figure was
# measured and every reader saw all 20,000 changes). With arguments (a test
# filter, say) only the cargo tests run.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

# rustup installs into ~/.cargo/bin, which a non-login CI shell may not have
# on its PATH.
if ! command -v cargo >/dev/null && [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
    PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi

scripts/provision.sh </dev/null
# pyarrow and duckdb for the archive tests (tests/it/archive.rs), cached after the first run.
scripts/archive-venv.sh </dev/null >/dev/null
cargo test --locked --all-targets "$@" </dev/null
if (($# == 0)); then
    results=$(mktemp -d /tmp/bintrail-bench-small.XXXXXX)
    scripts/bench.sh --size 20000 --duration 5 --rate 2000 --profile dev --out "$results" --check </dev/null
    rm -rf "$results"
fi

#!/usr/bin/env bash
# Usage: scripts/archive-venv.sh
#
# Provisions, once per machine, the Python environment the archive tests read
# the cold tier with (pyarrow and duckdb from PyPI) and serve S3 from (moto in
# server mode, on loopback), cached like the MySQL packages, and prints its
# python's path. Idempotent: a complete environment is left alone.
set -euo pipefail

venv=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/bintrail/archive-venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import pyarrow.parquet, duckdb, moto.server, boto3' 2>/dev/null; then
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check pyarrow duckdb 'moto[server]' >&2
fi
echo "$venv/bin/python"

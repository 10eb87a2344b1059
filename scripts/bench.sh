#!/usr/bin/env bash
# Usage: scripts/bench.sh [--size N] [--duration S] [--rate R] [--server-args 'ARGS'] [--keep]
#                         [--index-log-bin on|off] [--index-local-infile on|off] [--runs N]
#                         [--archive-changes K] [--scope all|targets] [--profile release|dev]
#                         [--out DIR] [--check]
#
# The end-to-end benchmark of bintrail (see bench/README.md). In one run, on a throwaway
# MySQL 9.7 source and a throwaway MySQL 9.7 index (scripts/server.sh, the tests' settings; the
# index with --skip-log-bin as in the tests, unless --index-log-bin on gives it the binlog a
# production index server has, with sync_binlog=1; and with --local-infile=ON, so that bintrail
# writes by LOAD DATA LOCAL INFILE, unless --index-local-infile off leaves MySQL's default OFF):
#   1. builds a backlog of N row changes on the source (default 1,000,000; multiple of 10,000):
#      bench.orders, 50% inserts / 30% updates / 20% deletes, 1,000 rows per transaction;
#   2. times `bintrail stream` (release build) from spawn until stream_state covers the
#      backlog; its CPU (/proc/<pid>/stat) and peak RSS (VmHWM);
#   3. the index-side limit: the same change rows, read back from the index, INSERTed with
#      1,000-row statements (one transaction each) into a copy of binlog_events and into the
#      established shape; index bytes per change of both;
#   3b. the physical-limit probe beyond that: the same rows by LOAD DATA LOCAL INFILE (1,000 rows per
#      transaction) into the copy of binlog_events and into the established shape, and (INSERT and
#      LOAD) into the copy without uk_change, event_id given (what a primary key that is itself the
#      dedup key would cost); skipped with --index-local-infile off, but for the INSERT one;
#   4. read+decode only: `bintrail stream --dry-run` over the backlog, and the peers
#      mysqlbinlog -v and python-mysql-replication on the same binlog files;
#   4b. from files: `bintrail index --files` over the backlog's binlog files in the source's data
#      directory into a fresh index database (against step 2's stream), `index --dry-run` over
#      them, and `mysqlbinlog -v` over the same files (no server involved);
#   4c. the cold tier: the backlog's change rows, moved 2 days back in a fresh index database,
#      archived by `bintrail rotate --retain 47h --archive DIR` (write rate against reading the
#      same rows from the index with the mysql client; Parquet bytes per change against the
#      backlog's binlog bytes and the index's on-disk bytes), then `bintrail archive verify`;
#   4c2. the cold tier at scale: an archive of K changes (--archive-changes, default 10,000,000,
#      or 10 × N when N < 1,000,000) over the 8,760 hours of a year (one table hourly, three more
#      daily), written by `bench archive-synth` with bintrail's own archive writer and recorded in
#      a fresh index's manifest; then `bintrail query --pk` of one key over the whole year and
#      over one day, timed, with the files, footers, row groups and bytes each read, and the
#      changes returned checked against what the generator wrote for that key; and the year
#      again with the manifest emptied (the files by listing, pruned by the layout alone);
#   4d. the huge-transaction variant: the same mix on another table, its updates and deletes as
#      ONE UPDATE of 30% and ONE DELETE of 20% of N rows (60k/40k at N = 200,000), streamed into a
#      fresh index database; reported against step 2's figure;
#   5. peak RSS while streaming ONE transaction of N rows;
#   6. live lag: R rows/s (default 5,000) for S seconds (default 60) while the stream runs;
#   7. time travel: `bintrail reconstruct` of bench.big (the N rows of step 5) as of right after
#      its insert, with N/10 changes since (updates, deletes, inserts in 1,000-row transactions),
#      against `SELECT *` of the same table from the same server; and `bintrail recover` of
#      those N/10 changes (the time to write the undo script).
# Prints a markdown table and writes it as JSON to bench/results/<UTC date-time>.json.
# --server-args adds mysqld arguments to BOTH servers (default: none, i.e. exactly the tests'
# settings; e.g. --server-args '--innodb-buffer-pool-size=1G' to see the effect of a larger pool).
# --keep leaves the servers and the work dir (printed) in place.
# --profile dev uses the debug builds that `cargo test` made (the test suite's small run);
# --out DIR writes the JSON there instead of bench/results/; --check fails the run unless every
# figure was measured and every reader saw exactly the N changes (the small run in scripts/test.sh).
# --scope targets runs only what [J]'s targets compare (steps 1, 2, 3 without the uk_change probe,
# 3b, 4's mysqlbinlog and dry run, 4d, 6; about a third of a whole run's time at 1,000,000 changes);
# the figures of the other steps read n/a. Default --scope all.
# --runs N repeats the whole run N times (fresh servers each time) and then reports every figure's
# min/median/max (bench/results/<UTC date-time>-runs.json, beside each run's own JSON).
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
if ! command -v cargo >/dev/null && [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
    PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi

size=1000000 duration=60 rate=5000 keep=false server_args= profile=release results=bench/results check=
index_log_bin=off index_local_infile=on runs=1 pass=() archive_changes= scope=all
while (($#)); do
    case $1 in
        --runs) runs=$2; shift 2; continue ;;
        --out) results=$2; shift 2; continue ;;
    esac
    # Every other flag is passed on unchanged to each run of --runs.
    pass+=("$1")
    [[ $1 == --keep || $1 == --check ]] || pass+=("${2-}")
    case $1 in
        --size) size=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --server-args) server_args=$2; shift 2 ;;
        --keep) keep=true; shift ;;
        --profile) profile=$2; shift 2 ;;
        --check) check=--check; shift ;;
        --index-log-bin) index_log_bin=$2; shift 2 ;;
        --index-local-infile) index_local_infile=$2; shift 2 ;;
        --archive-changes) archive_changes=$2; shift 2 ;;
        --scope) scope=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ $size =~ ^[0-9]+$ ]] && ((size >= 10000 && size % 10000 == 0)) ||
    { echo "bench.sh: --size must be a positive multiple of 10000" >&2; exit 2; }
[[ $index_log_bin == on || $index_log_bin == off ]] ||
    { echo "bench.sh: --index-log-bin must be on or off" >&2; exit 2; }
[[ $index_local_infile == on || $index_local_infile == off ]] ||
    { echo "bench.sh: --index-local-infile must be on or off" >&2; exit 2; }
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --runs must be a positive number" >&2; exit 2; }
[[ $scope == all || $scope == targets ]] || { echo "bench.sh: --scope must be all or targets" >&2; exit 2; }
[[ $scope == targets && -n $check ]] &&
    { echo "bench.sh: --check needs every figure, so --scope all (the default)" >&2; exit 2; }
if [[ -z $archive_changes ]]; then
    archive_changes=10000000
    ((size < 1000000)) && archive_changes=$((size * 10))
fi
[[ $archive_changes =~ ^[0-9]+$ ]] && ((archive_changes >= 100000)) ||
    { echo "bench.sh: --archive-changes must be a number of at least 100000" >&2; exit 2; }

log() { printf '== %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
now_ns() { date +%s%N; }
seconds_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

case $profile in
    release) build=(--release) dir=${CARGO_TARGET_DIR:-$PWD/target}/release ;;
    dev) build=() dir=${CARGO_TARGET_DIR:-$PWD/target}/debug ;;
    *) echo "bench.sh: --profile must be release or dev" >&2; exit 2 ;;
esac
if ((runs > 1)); then
    # Each run is a whole run of this script (fresh servers, its own JSON); then the summary.
    runs_dir=$(mktemp -d /tmp/bintrail-bench-runs.XXXXXX)
    for ((r = 1; r <= runs; r++)); do
        printf '== run %d of %d\n' "$r" "$runs" >&2
        "$0" "${pass[@]}" --out "$runs_dir/$r"
    done
    mkdir -p "$results"
    stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
    cp "$runs_dir"/*/*.json "$results/"
    "$dir/examples/bench" summary --out "$results/$stamp-runs.json" "$runs_dir"/*/*.json
    rm -rf "$runs_dir"
    printf '== wrote %s\n' "$results/$stamp-runs.json" >&2
    exit 0
fi
log "provision + build (bintrail and the bench helper, $profile profile)"
scripts/provision.sh </dev/null >/dev/null
cargo build "${build[@]}" --locked --quiet --bin bintrail --example bench
bintrail=$dir/bintrail
bench=$dir/examples/bench
# python-mysql-replication, once per machine (cached like the MySQL packages).
venv=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/bintrail/bench-venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import pymysqlreplication' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check mysql-replication
fi
eval "$(scripts/server.sh env)"
CLK_TCK=$(getconf CLK_TCK)
export CLK_TCK

work=$(mktemp -d /tmp/bintrail-bench.XXXXXX)
out=$work/out
mkdir -p "$out"
cleanup() {
    scripts/server.sh stop "$work/source" >/dev/null 2>&1 || true
    scripts/server.sh stop "$work/index" >/dev/null 2>&1 || true
    rm -rf "$work"
}
if $keep; then log "work dir $work (kept)"; else trap cleanup EXIT; fi

log "start source and index (scripts/server.sh, MySQL $BINTRAIL_MYSQL_VERSION)"
read -r -a extra_args <<<"$server_args"
source_port=$(scripts/server.sh start mysql "$work/source" "${extra_args[@]}" | sed -n 's/^port=//p')
index_bin_args=(--skip-log-bin)
[[ $index_log_bin == on ]] && index_bin_args=()
index_bin_args+=("--local-infile=${index_local_infile^^}")
index_port=$(scripts/server.sh start mysql "$work/index" "${index_bin_args[@]}" "${extra_args[@]}" | sed -n 's/^port=//p')
source_dsn="mysql://root@127.0.0.1:$source_port/"
index_dsn="mysql://root@127.0.0.1:$index_port/bintrail_bench"
src() { scripts/server.sh client "$work/source" "$@"; }
idx() { scripts/server.sh client "$work/index" bintrail_bench "$@"; }
"$bintrail" init --index-dsn "$index_dsn" >/dev/null 2>"$work/init.log"

src -e "CREATE DATABASE bench; CREATE TABLE bench.orders (
          id BIGINT NOT NULL PRIMARY KEY, customer_id INT NOT NULL, status VARCHAR(20) NOT NULL,
          amount DECIMAL(12,2) NOT NULL, placed_at DATETIME(6) NOT NULL, note VARCHAR(200) NULL);
        CREATE TABLE bench.big LIKE bench.orders; CREATE TABLE bench.orders_huge LIKE bench.orders;
        FLUSH BINARY LOGS;"
start_gtid=$(src -N -e 'SELECT @@gtid_executed' | tr -d '\n')
start_file=$(src -N -e 'SHOW BINARY LOG STATUS' | cut -f1)

# The backlog: per 10,000 changes, 5 insert transactions of 1,000 new rows, 3 update
# transactions of 1,000 of those rows, 2 delete transactions of 1,000 of the others.
gen_backlog() {
    local c base t lo
    echo "SET SESSION cte_max_recursion_depth = 1001;"
    for ((c = 0; c < size / 10000; c++)); do
        base=$((c * 5000))
        for ((t = 0; t < 5; t++)); do
            lo=$((base + t * 1000))
            echo "INSERT INTO bench.orders WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1000)
  SELECT $lo + n, ($lo + n) % 100003, ELT(1 + n % 3, 'new', 'pending', 'backorder'), (($lo + n) % 100000) / 100,
         TIMESTAMP('2026-11-25 12:00:00') + INTERVAL ($lo + n) * 1001 MICROSECOND,
         CONCAT('order ', $lo + n, ': ', REPEAT(SUBSTRING(SHA2($lo + n, 256), 1, 16), 1 + n % 8)) FROM s;"
        done
        for ((t = 0; t < 3; t++)); do
            lo=$((base + t * 1000 + 1))
            echo "UPDATE bench.orders SET status = 'paid', amount = amount + 1.25, placed_at = placed_at + INTERVAL 1 SECOND,
  note = CONCAT(note, ' +paid') WHERE id BETWEEN $lo AND $((lo + 999));"
        done
        for ((t = 3; t < 5; t++)); do
            lo=$((base + t * 1000 + 1))
            echo "DELETE FROM bench.orders WHERE id BETWEEN $lo AND $((lo + 999));"
        done
    done
}
log "build the backlog: $size changes"
t=$(now_ns)
gen_backlog | src bench
src -e 'FLUSH BINARY LOGS'
backlog_s=$(awk -v a="$t" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
target_gtid=$(src -N -e 'SELECT @@gtid_executed' | tr -d '\n')
end_file=$(src -N -e 'SHOW BINARY LOG STATUS' | cut -f1)
mapfile -t backlog_files < <(src -N -e 'SHOW BINARY LOGS' | cut -f1 | awk -v a="$start_file" -v b="$end_file" '$1 >= a && $1 < b')
binlog_bytes=$(src -N -e 'SHOW BINARY LOGS' | awk -v a="$start_file" -v b="$end_file" '$1 >= a && $1 < b { s += $2 } END { print s }')
log "backlog built in $backlog_s s: ${backlog_files[*]} ($binlog_bytes bytes)"

log "end-to-end: bintrail stream until its checkpoint covers the backlog"
"$bench" stream-until --bintrail "$bintrail" --source-dsn "$source_dsn" --index-dsn "$index_dsn" \
    --server-id 4242 --start-gtid "$start_gtid" --target-gtid "$target_gtid" --expect-rows "$size" \
    --log "$work/stream-backlog.log" >"$out/e2e.json"
cat "$out/e2e.json" >&2
indexed=$(idx -N -e 'SELECT COUNT(*) FROM binlog_events')
[[ $indexed == "$size" ]] || log "WARNING: binlog_events holds $indexed rows, expected $size"
"$bench" bytes --index-dsn "$index_dsn" --table binlog_events >"$out/bytes.json"

log "read+decode only: bintrail stream --dry-run over the backlog (writes nothing)"
t=$(now_ns)
"$bintrail" stream --dry-run --format json --source-dsn "$source_dsn" --index-dsn "$index_dsn" \
    --server-id 4243 --start-gtid "$start_gtid" --ssl-mode disabled --log-format text \
    2>"$work/dryrun.log" >"$work/dryrun-summary.json"
dry_s=$(awk -v a="$t" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
dry_changes=$(sed -n 's/^  "changes": \([0-9]*\),$/\1/p' "$work/dryrun-summary.json")
printf '{"seconds": %s, "changes": %s, "rows_per_s": %s}\n' "$dry_s" "${dry_changes:-0}" \
    "$(awk -v s="$dry_s" -v n="${dry_changes:-0}" 'BEGIN { printf "%.0f", n / s }')" >"$out/dryrun.json"
cat "$out/dryrun.json" >&2

log "index-side limit: the same rows into a SHOW CREATE TABLE copy of binlog_events"
idx -N -B --raw -e 'SHOW CREATE TABLE binlog_events' | cut -f2- |
    sed -e '1s/CREATE TABLE `binlog_events`/CREATE TABLE `bench_limit_events`/' -e 's/ AUTO_INCREMENT=[0-9]*//' \
        >"$work/limit.sql"
idx <"$work/limit.sql"
cols=$(idx -N -e "SELECT GROUP_CONCAT(column_name ORDER BY ordinal_position) FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'binlog_events'
      AND column_name <> 'event_id' AND extra NOT LIKE '%GENERATED%'")
"$bench" limit --index-dsn "$index_dsn" --from binlog_events --to bench_limit_events --columns "$cols" \
    >"$out/limit.json"
cat "$out/limit.json" >&2
load_limit() { # <to table> <columns> <out name>: the LOAD DATA variant, when the index allows it
    if [[ $index_local_infile == on ]]; then
        idx -e "TRUNCATE TABLE $1"
        "$bench" limit --index-dsn "$index_dsn" --from binlog_events --to "$1" --columns "$2" --load-data 1 \
            >"$out/$3.json"
        cat "$out/$3.json" >&2
    fi
}
load_limit bench_limit_events "$cols" limit_load
idx -e 'DROP TABLE bench_limit_events'
if [[ $scope == all ]]; then
    log "potential: the copy without uk_change, event_id given (the primary key as the dedup key)"
    sed -e '1s/`bench_limit_events`/`bench_nouk_events`/' -e '/UNIQUE KEY `uk_change`/d' "$work/limit.sql" | idx
    "$bench" limit --index-dsn "$index_dsn" --from binlog_events --to bench_nouk_events --columns "event_id,$cols" \
        >"$out/nouk.json"
    cat "$out/nouk.json" >&2
    load_limit bench_nouk_events "event_id,$cols" nouk_load
    idx -e 'DROP TABLE bench_nouk_events'
fi

log "established shape: 4 secondary indexes, stored SHA2 pk_hash, 3 JSON columns"
idx -e "CREATE TABLE bench_established_events (
  event_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  binlog_file VARCHAR(255) NOT NULL,
  start_pos BIGINT UNSIGNED NOT NULL,
  end_pos BIGINT UNSIGNED NOT NULL,
  event_timestamp DATETIME NOT NULL,
  gtid VARCHAR(128) NULL,
  connection_id INT UNSIGNED NULL,
  schema_name VARCHAR(64) NOT NULL,
  table_name VARCHAR(64) NOT NULL,
  event_type TINYINT UNSIGNED NOT NULL,
  pk_values TEXT NOT NULL,
  pk_hash CHAR(64) AS (SHA2(pk_values, 256)) STORED,
  changed_columns JSON NULL,
  row_before JSON NULL,
  row_after JSON NULL,
  schema_version INT UNSIGNED NOT NULL,
  PRIMARY KEY (event_id),
  KEY idx_schema_table (schema_name, table_name),
  KEY idx_pk_hash (pk_hash),
  KEY idx_event_timestamp (event_timestamp),
  KEY idx_gtid (gtid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
est_cols=$(sed -e 's/\bstream_id,//' -e 's/,row_in_event\b//' -e 's/,policy_version\b//' <<<"$cols")
"$bench" limit --index-dsn "$index_dsn" --from binlog_events --to bench_established_events \
    --columns "$est_cols" >"$out/established.json"
cat "$out/established.json" >&2
load_limit bench_established_events "$est_cols" established_load
idx -e 'DROP TABLE bench_established_events'

log "peer: mysqlbinlog -v --read-from-remote-server ${backlog_files[*]}"
t=$(now_ns)
"$BINTRAIL_MYSQL_BIN/mysqlbinlog" --no-defaults -v --read-from-remote-server --host 127.0.0.1 \
    --port "$source_port" --user root "${backlog_files[@]}" >/dev/null
mb_s=$(awk -v a="$t" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
printf '{"seconds": %s, "changes": %s, "rows_per_s": %s}\n' "$mb_s" "$size" \
    "$(awk -v s="$mb_s" -v n="$size" 'BEGIN { printf "%.0f", n / s }')" >"$out/mysqlbinlog.json"
cat "$out/mysqlbinlog.json" >&2

if [[ $scope == all ]]; then
    log "files: bintrail index --files over ${backlog_files[*]} (a fresh index database)"
    backlog_paths=("${backlog_files[@]/#/$work/source/data/}")
    files_dsn="mysql://root@127.0.0.1:$index_port/bintrail_files"
    "$bintrail" init --index-dsn "$files_dsn" >/dev/null 2>>"$work/init.log"
    files_json() { # <seconds> <changes>
        printf '{"seconds": %s, "changes": %s, "rows_per_s": %s}\n' "$1" "${2:-0}" \
            "$(awk -v s="$1" -v n="${2:-0}" 'BEGIN { printf "%.0f", n / s }')"
    }
    t=$(now_ns)
    "$bintrail" index --index-dsn "$files_dsn" --ssl-mode disabled --server-id 4244 \
        --files "${backlog_paths[@]}" >"$work/files.out" 2>"$work/files.log"
    files_s=$(seconds_since "$t")
    files_json "$files_s" "$(sed -n 's/^indexed \([0-9]*\) changes.*/\1/p' "$work/files.out")" >"$out/files.json"
    cat "$out/files.json" >&2
    t=$(now_ns)
    "$bintrail" index --dry-run --index-dsn "$files_dsn" --ssl-mode disabled --server-id 4245 \
        --files "${backlog_paths[@]}" >"$work/files-dry.out" 2>"$work/files-dry.log"
    files_dry_s=$(seconds_since "$t")
    files_json "$files_dry_s" "$(sed -n 's/^dry run, nothing written: would index \([0-9]*\) changes.*/\1/p' "$work/files-dry.out")" \
        >"$out/files_dryrun.json"
    cat "$out/files_dryrun.json" >&2
    idx -e 'DROP DATABASE bintrail_files'
    t=$(now_ns)
    "$BINTRAIL_MYSQL_BIN/mysqlbinlog" --no-defaults -v "${backlog_paths[@]}" >/dev/null
    files_json "$(seconds_since "$t")" "$size" >"$out/mysqlbinlog_files.json"
    cat "$out/mysqlbinlog_files.json" >&2

    log "archive: rotate --retain 47h --archive over the backlog's $size changes, copied 2 days back"
    # A fresh index database whose hours begin 2 days ago holds the same change rows with their
    # times moved back 2 days, so rotate archives (and then drops) exactly them and their hour.
    arch_dsn="mysql://root@127.0.0.1:$index_port/bintrail_arch"
    "$bench" init-at --index-dsn "$arch_dsn" --days-ago 2
    arch_select=$(sed -e 's/\bevent_timestamp\b/event_timestamp - INTERVAL 2 DAY/' <<<"$cols")
    idx -e "INSERT INTO bintrail_arch.binlog_events ($cols) SELECT $arch_select FROM binlog_events"
    t=$(now_ns)
    arch_read_rows=$(idx -N -B -e 'SELECT * FROM bintrail_arch.binlog_events' | wc -l)
    arch_read_s=$(seconds_since "$t")
    t=$(now_ns)
    "$bintrail" rotate --index-dsn "$arch_dsn" --ssl-mode disabled --log-format text --retain 47h \
        --archive "$work/archive" >"$work/archive.out" 2>"$work/archive.log"
    arch_s=$(seconds_since "$t")
    arch_changes=$(sed -n 's/.*: archived \([0-9]*\) change(s) into.*/\1/p' "$work/archive.out")
    arch_files=$(find "$work/archive" -name '*.parquet' | wc -l)
    arch_bytes=$(find "$work/archive" -name '*.parquet' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    t=$(now_ns)
    verify_code=0
    "$bintrail" archive verify --index-dsn "$arch_dsn" --ssl-mode disabled --log-format text \
        --archive "$work/archive" >"$work/verify.out" 2>&1 || verify_code=$?
    verify_s=$(seconds_since "$t")
    printf '{"seconds": %s, "changes": %s, "rows_per_s": %s, "files": %s, "bytes": %s, "binlog_bytes": %s, "index_read_s": %s, "index_read_rows": %s, "verify_s": %s, "verify_exit": %s}\n' \
        "$arch_s" "${arch_changes:-0}" "$(awk -v s="$arch_s" -v n="${arch_changes:-0}" 'BEGIN { printf "%.0f", n / s }')" \
        "$arch_files" "$arch_bytes" "$binlog_bytes" "$arch_read_s" "$arch_read_rows" "$verify_s" "$verify_code" \
        >"$out/archive.json"
    cat "$out/archive.json" >&2
    idx -e 'DROP DATABASE bintrail_arch'

    log "archive at scale: $archive_changes synthetic changes over a year of hours, one-key queries"
    scale_dsn="mysql://root@127.0.0.1:$index_port/bintrail_scale"
    "$bintrail" init --index-dsn "$scale_dsn" >/dev/null 2>>"$work/init.log"
    "$bench" archive-synth --index-dsn "$scale_dsn" --dir "$work/archive-scale" --changes "$archive_changes" \
        --expect "$work/scale-expect.jsonl" >"$out/archive_scale.json"
    cat "$out/archive_scale.json" >&2
    probe_pk=$(sed -n 's/.*"pk":"\([0-9]*\)".*/\1/p' "$out/archive_scale.json")
    probe_day=$(sed -n 's/.*"day":"\([0-9-]*\)".*/\1/p' "$out/archive_scale.json")
    scale_query=("$bench" archive-query --bintrail "$bintrail" --index-dsn "$scale_dsn" --archive "$work/archive-scale"
        --schema bench --table orders --pk "${probe_pk:-0}" --expect "$work/scale-expect.jsonl")
    "${scale_query[@]}" >"$out/archive_query.json"
    cat "$out/archive_query.json" >&2
    "${scale_query[@]}" --since "$probe_day 00:00:00" --until "$probe_day 23:59:59" >"$out/archive_query_day.json"
    cat "$out/archive_query_day.json" >&2
    # The same year without the manifest: the files found by listing, pruned by the layout alone.
    scripts/server.sh client "$work/index" bintrail_scale -e 'DELETE FROM archive_files'
    "${scale_query[@]}" >"$out/archive_query_layout.json"
    cat "$out/archive_query_layout.json" >&2
    idx -e 'DROP DATABASE bintrail_scale'
    rm -rf "$work/archive-scale"

    log "peer: python-mysql-replication"
    "$venv/bin/python" bench/pyrepl.py 127.0.0.1 "$source_port" "$start_file" "$end_file" >"$out/pyrepl.json"
    cat "$out/pyrepl.json" >&2
fi

run_lag() {
    log "live lag: $rate rows/s for $duration s"
    "$bench" lag --bintrail "$bintrail" --source-dsn "$source_dsn" --index-dsn "$index_dsn" \
        --server-id 4242 --rate "$rate" --duration "$duration" --log "$work/stream-lag.log" >"$out/lag.json"
    cat "$out/lag.json" >&2
}
# With only the targets' stages, the lag stage comes here: stream 4242's checkpoint is still at
# the backlog's end, and every stage reading the backlog is done. In a whole run it follows the
# memory stage, whose stream has caught up with the huge transactions before it.
[[ $scope == targets ]] && run_lag

log "huge transactions: the same mix with ONE $((size * 3 / 10))-row UPDATE and ONE $((size / 5))-row DELETE"
# The inserts as in the backlog (1,000-row transactions), then one UPDATE of the rows the
# backlog's updates touch and one DELETE of the rows its deletes remove: the same changes.
gen_huge() {
    local c t lo
    echo "SET SESSION cte_max_recursion_depth = 1001;"
    for ((c = 0; c < size / 10000; c++)); do
        for ((t = 0; t < 5; t++)); do
            lo=$((c * 5000 + t * 1000))
            echo "INSERT INTO bench.orders_huge WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 1000)
  SELECT $lo + n, ($lo + n) % 100003, ELT(1 + n % 3, 'new', 'pending', 'backorder'), (($lo + n) % 100000) / 100,
         TIMESTAMP('2026-11-25 12:00:00') + INTERVAL ($lo + n) * 1001 MICROSECOND,
         CONCAT('order ', $lo + n, ': ', REPEAT(SUBSTRING(SHA2($lo + n, 256), 1, 16), 1 + n % 8)) FROM s;"
        done
    done
    echo "UPDATE bench.orders_huge SET status = 'paid', amount = amount + 1.25, placed_at = placed_at + INTERVAL 1 SECOND,
  note = CONCAT(note, ' +paid') WHERE (id - 1) % 5000 < 3000;"
    echo "DELETE FROM bench.orders_huge WHERE (id - 1) % 5000 >= 3000;"
}
huge_start=$(src -N -e 'SELECT @@gtid_executed' | tr -d '\n')
gen_huge | src bench
huge_target=$(src -N -e 'SELECT @@gtid_executed' | tr -d '\n')
huge_dsn="mysql://root@127.0.0.1:$index_port/bintrail_huge"
"$bintrail" init --index-dsn "$huge_dsn" >/dev/null 2>>"$work/init.log"
"$bench" stream-until --bintrail "$bintrail" --source-dsn "$source_dsn" --index-dsn "$huge_dsn" \
    --server-id 4246 --start-gtid "$huge_start" --target-gtid "$huge_target" --expect-rows "$size" \
    --log "$work/stream-huge.log" >"$work/huge.json"
huge_rows=$(scripts/server.sh client "$work/index" bintrail_huge -N -e 'SELECT COUNT(*) FROM binlog_events')
sed "s/}\$/, \"rows\": ${huge_rows:-0}}/" "$work/huge.json" >"$out/huge.json"
cat "$out/huge.json" >&2
idx -e 'DROP DATABASE bintrail_huge'

if [[ $scope == all ]]; then
    log "memory: one transaction of $size rows (INSERT ... SELECT into bench.big)"
    src bench -e "SET SESSION cte_max_recursion_depth = $((size + 1));
      INSERT INTO bench.big WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $size)
      SELECT n, n % 100003, 'new', (n % 100000) / 100, TIMESTAMP('2026-11-25 12:00:00') + INTERVAL n MICROSECOND,
             CONCAT('big ', n, ': ', REPEAT(SUBSTRING(SHA2(n, 256), 1, 16), 1 + n % 8)) FROM s"
    big_gtid=$(src -N -e 'SELECT @@gtid_executed' | tr -d '\n')
    # This source has one server uuid: the insert's own GTID is its last.
    big_last="${big_gtid%%:*}:${big_gtid##*[-:]}"
    "$bench" stream-until --bintrail "$bintrail" --source-dsn "$source_dsn" --index-dsn "$index_dsn" \
        --server-id 4242 --target-gtid "$big_gtid" --expect-rows "$size" --log "$work/stream-big.log" >"$out/bigtxn.json"
    cat "$out/bigtxn.json" >&2
fi

[[ $scope == all ]] && run_lag

if [[ $scope == all ]]; then
    log "time travel: reconstruct bench.big ($size rows) as of $big_last, with $((size / 10)) changes since"
    sleep 1.1
    tt_since=$(src -N -e "SELECT DATE_FORMAT(UTC_TIMESTAMP(), '%Y-%m-%d %H:%i:%s')")
    gen_changes() {
        local c base
        echo "SET SESSION cte_max_recursion_depth = 1001;"
        for ((c = 0; c < size / 10000; c++)); do
            base=$((c * 10000))
            echo "UPDATE bench.big SET status = 'undone', amount = amount + 1 WHERE id BETWEEN $((base + 1)) AND $((base + 500));"
            echo "DELETE FROM bench.big WHERE id BETWEEN $((base + 501)) AND $((base + 800));"
            echo "INSERT INTO bench.big WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 200)
      SELECT $((size + c * 200)) + n, n, 'late', 1.00, TIMESTAMP('2026-11-26 12:00:00'), NULL FROM s;"
        done
    }
    gen_changes | src bench
    tt_gtid=$(src -N -e 'SELECT @@gtid_executed' | tr -d '\n')
    "$bench" stream-until --bintrail "$bintrail" --source-dsn "$source_dsn" --index-dsn "$index_dsn" \
        --server-id 4242 --target-gtid "$tt_gtid" --expect-rows $((size / 10)) --log "$work/stream-tt.log" >/dev/null
    t=$(now_ns)
    src -N -B -e 'SELECT * FROM bench.big' >/dev/null
    select_s=$(awk -v a="$t" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    t=$(now_ns)
    recon_code=0
    "$bintrail" reconstruct --index-dsn "$index_dsn" --source-dsn "$source_dsn" --ssl-mode disabled \
        --table bench.big --as-of-gtid "$big_last" --output "$work/big-then.csv" 2>"$work/reconstruct.log" || recon_code=$?
    recon_s=$(awk -v a="$t" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    recon_rows=0
    [[ -f $work/big-then.csv ]] && recon_rows=$(($(wc -l <"$work/big-then.csv") - 1))
    t=$(now_ns)
    undo_code=0
    "$bintrail" recover --index-dsn "$index_dsn" --source-dsn "$source_dsn" --ssl-mode disabled \
        --schema bench --table big --since "$tt_since" --limit "$size" --output "$work/undo.sql" \
        2>"$work/recover.log" || undo_code=$?
    undo_s=$(awk -v a="$t" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    undo_changes=$(grep -c '^-- #' "$work/undo.sql" 2>/dev/null) || true
    undo_changes=${undo_changes:-0}
    printf '{"table_rows": %s, "changes_since": %s, "reconstruct_s": %s, "reconstruct_rows": %s, "reconstruct_exit": %s, "select_s": %s, "undo_s": %s, "undo_changes": %s, "undo_exit": %s}\n' \
        "$size" "$((size / 10))" "$recon_s" "$recon_rows" "$recon_code" "$select_s" "$undo_s" "$undo_changes" "$undo_code" \
        >"$out/timetravel.json"
    cat "$out/timetravel.json" >&2
fi

settings() { # <client fn>: the settings that matter for write throughput, as one line
    "$1" -N -e "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('innodb_buffer_pool_size',
        'innodb_flush_log_at_trx_commit', 'sync_binlog', 'log_bin', 'innodb_log_buffer_size',
        'innodb_redo_log_capacity', 'innodb_doublewrite', 'innodb_flush_method', 'binlog_format',
        'binlog_row_image', 'binlog_row_metadata', 'gtid_mode', 'max_allowed_packet', 'performance_schema')" |
        awk -F'\t' '{ printf "%s%s=%s", (NR > 1 ? ", " : ""), $1, $2 }'
}
source_settings=$(settings src)
index_settings=$(settings idx)
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
cat >"$out/meta.json" <<EOF
{"date": "$stamp", "changes": $size, "mix": "50% inserts / 30% updates / 20% deletes, 1,000 rows per transaction",
 "backlog_build_s": $backlog_s, "archive_changes": $archive_changes, "backlog_binlog_bytes": $binlog_bytes, "backlog_files": "${backlog_files[*]}",
 "mysql": "$BINTRAIL_MYSQL_VERSION", "bintrail": "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src vendor Cargo.toml 2>/dev/null || echo -dirty)",
 "profile": "$profile", "scope": "$scope", "nproc": $(nproc), "live_rate": $rate, "live_duration_s": $duration,
 "servers": "scripts/server.sh defaults (index: ${index_bin_args[*]:-with its binlog}) + [$server_args]", "index_log_bin": "$index_log_bin", "index_local_infile": "$index_local_infile",
 "source_settings": "$source_settings", "index_settings": "$index_settings",
 "bintrail_flags": "stream --checkpoint-interval 1 --ssl-mode disabled --log-format text (batch-size default 1000)"}
EOF
mkdir -p "$results"
"$bench" report --dir "$out" --out "$results/$stamp.json" $check
log "wrote $results/$stamp.json"

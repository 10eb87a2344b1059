#!/usr/bin/env bash
# Usage: scripts/demo.sh [--keep]
#
# The embedded default: starts a throwaway MySQL 9.7 source and a throwaway index server on free
# loopback ports, runs `bintrail init` and `bintrail stream`, drives a small shop.orders
# workload, and shows what landed in the change index. Everything is stopped and removed at the
# end, unless --keep is given (then the servers, the stream and their DSNs stay up to explore).
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."
if ! command -v cargo >/dev/null && [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
    PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
keep=false
[[ ${1:-} == --keep ]] && keep=true

started=$(date +%s%N)
scripts/provision.sh </dev/null >/dev/null
cargo build --release --locked --quiet
bintrail=${CARGO_TARGET_DIR:-$PWD/target}/release/bintrail

work=$(mktemp -d /tmp/bintrail-demo.XXXXXX)
stream_pid=
cleanup() {
    [[ -n $stream_pid ]] && kill -TERM "$stream_pid" 2>/dev/null && wait "$stream_pid" 2>/dev/null
    scripts/server.sh stop "$work/source" >/dev/null 2>&1 || true
    scripts/server.sh stop "$work/index" >/dev/null 2>&1 || true
    rm -rf "$work"
}
$keep || trap cleanup EXIT

source_port=$(scripts/server.sh start mysql "$work/source" | sed -n 's/^port=//p')
index_port=$(scripts/server.sh start mysql "$work/index" --skip-log-bin | sed -n 's/^port=//p')
source_dsn="mysql://root@127.0.0.1:$source_port/"
index_dsn="mysql://root@127.0.0.1:$index_port/bintrail_demo"
src() { scripts/server.sh client "$work/source" "$@"; }
idx() { scripts/server.sh client "$work/index" bintrail_demo "$@"; }

echo "== source $source_dsn, index $index_dsn"
echo "== bintrail init"
"$bintrail" init --index-dsn "$index_dsn"

src -e "CREATE DATABASE shop; CREATE TABLE shop.orders (
          id BIGINT PRIMARY KEY, customer VARCHAR(40), status ENUM('new','paid','shipped'),
          amount DECIMAL(10,2), placed_at DATETIME(6), note JSON)"

# The start point is read here, before the stream is started: inside the background command
# it would be read whenever the child got to it, possibly after the workload below, which the
# stream would then skip.
start_gtid=$(src -N -e 'SELECT @@gtid_executed' | tr -d '\n')
[[ -n $start_gtid ]] || { echo "demo: could not read the source's gtid_executed" >&2; exit 1; }
echo "== bintrail stream --server-id 42 --schemas shop --start-gtid $start_gtid (in the background)"
"$bintrail" stream --source-dsn "$source_dsn" --index-dsn "$index_dsn" --server-id 42 \
    --schemas shop --checkpoint-interval 1 --start-gtid "$start_gtid" \
    --log-format text 2>"$work/stream.log" &
stream_pid=$!

src -e "
  INSERT INTO shop.orders VALUES
    (12345, 'Ada Lovelace', 'new', 99.90, '2026-11-25 14:00:00.000001', '{\"gift\": true}'),
    (12346, 'Alan Turing', 'new', 12.00, '2026-11-25 14:00:01', NULL);
  BEGIN;
    UPDATE shop.orders SET status = 'paid' WHERE id = 12345;
    UPDATE shop.orders SET amount = 0.00, note = '{\"refund\": \"all\"}' WHERE id = 12346;
  COMMIT;
  DELETE FROM shop.orders WHERE id = 12346;
  UPDATE shop.orders SET status = 'shipped' WHERE id = 12345;"
# The workload above makes 6 row changes: 2 inserts, 3 updates, 1 delete.
workload_changes=6
target=$(src -N -e 'SELECT @@gtid_executed' | tr -d '\n')

# Wait (up to 30 s) until the stream's checkpoint covers everything the source committed.
for _ in $(seq 300); do
    got=$(idx -N -e "SELECT GTID_SUBSET('$target', gtid_set) FROM stream_state WHERE server_id = 42" 2>/dev/null || true)
    [[ $got == 1 ]] && break
    sleep 0.1
done
[[ $got == 1 ]] || { echo "stream did not catch up; its log:"; cat "$work/stream.log"; exit 1; }

indexed=$(idx -N -e "SELECT COUNT(*) FROM binlog_events WHERE schema_name = 'shop'")
if ((indexed < workload_changes)); then
    echo "demo FAILED: the index holds $indexed changes of shop, the workload made $workload_changes; the stream's log:" >&2
    cat "$work/stream.log" >&2
    exit 1
fi
echo "== binlog_events ($indexed changes, as many as the workload made)"
idx -t -e "SELECT event_id, event_timestamp, gtid, CONCAT(schema_name, '.', table_name) AS tbl,
              ELT(event_type, 'insert', 'update', 'delete') AS type, pk_values, changed_columns,
              row_before, row_after FROM binlog_events ORDER BY event_id"
echo "== stream_state"
idx -t -e "SELECT server_id, mode, binlog_file, binlog_position, gtid_set, events_indexed,
              last_event_time, last_checkpoint FROM stream_state"
echo "== stream log"
cat "$work/stream.log"
if $keep; then
    echo "== kept running: source $source_dsn, index $index_dsn, stream pid $stream_pid, files $work"
    echo "   stop with: kill $stream_pid; scripts/server.sh stop $work/source; scripts/server.sh stop $work/index"
else
    kill -TERM "$stream_pid"; wait "$stream_pid" || true; stream_pid=
    tail -n 2 "$work/stream.log"
fi
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
printf '== demo finished in %d.%03d s\n' $((elapsed_ms / 1000)) $((elapsed_ms % 1000))

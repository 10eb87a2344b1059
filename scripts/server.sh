#!/usr/bin/env bash
# Usage:
#   scripts/server.sh start <mysql|mariadb|mariadb118> <DIR> [extra server args...]
#       Copies the provisioned template data dir to DIR/data, starts a server
#       on a free 127.0.0.1 port and waits until root can log in over TCP.
#       Prints exactly one line to stdout: "port=<port>". Extra args come
#       last and so override the defaults (e.g. --binlog-format=STATEMENT,
#       --skip-log-bin, --binlog-row-metadata=MINIMAL, --server-id=7,
#       --port=N to pin the port).
#   scripts/server.sh stop <DIR>        graceful stop (SIGTERM, then SIGKILL
#                                       after 60 s); ok if not running
#   scripts/server.sh kill <DIR>        SIGKILL (crash tests)
#   scripts/server.sh restart <DIR> [extra server args...]
#       Stop (if running), then start on the same port, data, server id and
#       args; extra args, if given, replace the ones given to start.
#       Prints "port=<port>".
#   scripts/server.sh client <DIR> [client args...]
#       Runs the flavor's client as root over TCP, e.g.
#       scripts/server.sh client DIR -N -e 'SHOW BINARY LOG STATUS'
#   scripts/server.sh env
#       Prints KEY=value lines (shell-quoted) with the provisioned paths.
#
# DIR layout: data/ files/ (secure-file-priv) error.log console.log
#   mysqld.pid (the server's) server.pid (ours) port flavor socket
#   args.base args.extra (NUL-separated, for restart).
# Needs scripts/provision.sh to have run. Root with an empty password is
# root@'%' (and root@localhost); servers listen on 127.0.0.1 only.
set -euo pipefail

home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
CACHE=${BINTRAIL_CACHE:-$home/.cache/bintrail}
START_TIMEOUT=60
STOP_TIMEOUT=60
PORT_ATTEMPTS=10

die() { printf 'server.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }

flavor_dir() { # <flavor> -> resolved provisioned dir
    local d="$CACHE/$1-current"
    [[ -f $d/.provisioned ]] || die "$1 is not provisioned under $CACHE; run scripts/provision.sh"
    readlink -f "$d"
}

server_bin() { # <flavor>
    case $1 in
        mysql) echo "$(flavor_dir mysql)/bin/mysqld" ;;
        mariadb) echo "$(flavor_dir mariadb)/bin/mariadbd" ;;
        mariadb118) echo "$(flavor_dir mariadb118)/bin/mariadbd" ;;
        *) die "unknown flavor '$1' (mysql, mariadb or mariadb118)" ;;
    esac
}

client_bin() { # <flavor>
    case $1 in
        mysql) echo "$(flavor_dir mysql)/bin/mysql" ;;
        mariadb) echo "$(flavor_dir mariadb)/bin/mariadb" ;;
        mariadb118) echo "$(flavor_dir mariadb118)/bin/mariadb" ;;
        *) die "unknown flavor '$1'" ;;
    esac
}

# A zombie still answers kill -0 (PID 1 here reaps lazily, and our own failed
# child stays one until we exit), so only a process that is running counts.
# After SIGKILL the group leader turns zombie while its other threads are
# still tearing down and holding the listening socket; those count as alive.
alive() { # <pid>
    local stat tasks
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]] && return 0
    tasks=$(find "/proc/$1/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    ((tasks > 1))
}

# The pid of DIR's server if it is running. Pids are reused, so the process
# must also carry DIR's --pid-file in its command line (it shows up as
# ld-linux... for MySQL, so names are useless).
running_pid() { # <DIR>
    local dir=$1 f pid
    for f in "$dir/server.pid" "$dir/mysqld.pid"; do
        pid=$(cat "$f" 2>/dev/null) || continue
        [[ $pid =~ ^[0-9]+$ ]] || continue
        alive "$pid" || continue
        if tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -Fxq -- "--pid-file=$dir/mysqld.pid"; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

wait_gone() { # <pid> <seconds>
    local deadline=$((SECONDS + $2))
    while alive "$1"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# Ports below the kernel's ephemeral range, so that ports handed out for
# outgoing connections and for tests' own bind(0) listeners never collide
# with ours.
pick_port() {
    local lo=20000 hi=60000 eph port
    eph=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 0)
    if ((eph > lo + 1000 && eph <= hi)); then hi=$((eph - 1)); fi
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        port=$((lo + SRANDOM % (hi - lo + 1)))
        # Cheap pre-check only; the real arbiter is the server's bind().
        if ! (: <>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    done
    echo "$port"
}

short_socket() { # <DIR>: sun_path is 108 bytes; long DIRs go under /tmp
    local dir=$1
    if ((${#dir} <= 90)); then
        echo "$dir/mysqld.sock"
    else
        echo "$(mktemp -d /tmp/bintrail-sock.XXXXXX)/mysqld.sock"
    fi
}

remove_socket_dir() { # <DIR>
    local sock
    sock=$(cat "$1/socket" 2>/dev/null) || return 0
    case $sock in /tmp/bintrail-sock.*/mysqld.sock) rm -rf "${sock%/*}" ;; esac
}

base_args() { # <flavor> <DIR> <port> <socket> <server id>
    local flavor=$1 dir=$2 port=$3 sock=$4 id=$5
    local a=(
        --no-defaults --user=root
        --datadir="$dir/data" --socket="$sock" --port="$port"
        --bind-address=127.0.0.1 --skip-name-resolve
        --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log"
        --secure-file-priv="$dir/files"
        # Small footprint: many servers run at once on a 2-core box.
        --performance-schema=OFF --innodb-buffer-pool-size=64M
        --innodb-buffer-pool-load-at-startup=OFF --innodb-buffer-pool-dump-at-shutdown=OFF
        # The source settings of DESIGN.md.
        --server-id="$id" --log-bin=binlog --binlog-format=ROW
        --binlog-row-image=FULL --binlog-row-metadata=FULL
    )
    if [[ $flavor == mysql ]]; then
        # Each InnoDB I/O thread reserves 256 of the machine-wide 65536 native
        # AIO events (fs.aio-max-nr); the default 4+4 threads would cap us at
        # ~28 concurrent MySQL servers, 2+2 at ~50.
        a+=(--mysqlx=OFF --gtid-mode=ON --enforce-gtid-consistency=ON
            --innodb-log-buffer-size=16M
            --innodb-read-io-threads=2 --innodb-write-io-threads=2)
    fi
    printf '%s\0' "${a[@]}"
}

# Launches DIR's server from args.base + args.extra and waits until it
# answers as itself over TCP. Returns 0 ready, 3 port taken, 1 other failure
# (the log tail is already on stderr and nothing of ours is left running).
launch_and_wait() { # <flavor> <DIR> <port>
    local flavor=$1 dir=$2 port=$3 bin client pid offset new deadline out
    bin=$(server_bin "$flavor")
    client=$(client_bin "$flavor")
    local args=()
    mapfile -d '' -t args < <(cat "$dir/args.base" "$dir/args.extra")
    mkdir -p "$dir/files"
    chmod 700 "$dir/files"
    local sock
    sock=$(printf '%s\n' "${args[@]}" | sed -n 's/^--socket=//p' | tail -n1)
    # Only DIR's server uses this socket path and none is running, so a
    # leftover socket/lock (after kill) is stale; MySQL would refuse to start
    # if the dead pid in the lock file is still an unreaped zombie.
    if [[ -n $sock ]]; then
        mkdir -p "${sock%/*}"
        rm -f "$sock" "$sock.lock"
    fi
    touch "$dir/error.log"
    offset=$(stat -c %s "$dir/error.log")
    rm -f "$dir/mysqld.pid"
    "$bin" "${args[@]}" >>"$dir/console.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/server.pid"

    deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        new=$(tail -c +"$((offset + 1))" "$dir/error.log")
        if ! alive "$pid"; then
            wait "$pid" 2>/dev/null || true
            if grep -q 'Address already in use' <<<"$new"; then return 3; fi
            printf 'server.sh: %s server in %s exited during startup; error.log:\n' "$flavor" "$dir" >&2
            tail -n 40 <<<"$new" >&2
            tail -n 10 "$dir/console.log" >&2
            return 1
        fi
        # Grepping the log is cheap; the client (through the loader) is not,
        # so it only runs once the server says it is ready. Asking for
        # @@pid_file proves we reached our server, not another one that won
        # the port.
        if grep -q 'ready for connections' <<<"$new" &&
            out=$("$client" --no-defaults --protocol=TCP -h127.0.0.1 -P"$port" -uroot \
                --connect-timeout=5 -N -B -e 'SELECT @@pid_file' 2>/dev/null) &&
            [[ $out == "$dir/mysqld.pid" ]]; then
            return 0
        fi
        sleep 0.1
    done
    printf 'server.sh: %s server in %s not ready after %s s; error.log:\n' "$flavor" "$dir" "$START_TIMEOUT" >&2
    tail -n 40 <<<"$new" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || true
    return 1
}

fresh_data() { # <flavor> <DIR>
    rm -rf "$2/data"
    cp -a "$(flavor_dir "$1")/template" "$2/data"
    # A server_uuid of its own for every server (the template has none, but
    # be sure).
    rm -f "$2/data/auto.cnf"
}

record_success() { # <flavor> <DIR> <port> <socket>
    echo "$1" >"$2/flavor"
    echo "$3" >"$2/port"
    echo "$4" >"$2/socket"
    echo "port=$3"
}

cmd_start() {
    (($# >= 2)) || usage
    local flavor=$1 dir=$2
    shift 2
    server_bin "$flavor" >/dev/null
    mkdir -p "$dir"
    dir=$(realpath "$dir")
    if running_pid "$dir" >/dev/null; then die "a server is already running in $dir"; fi
    [[ ! -e $dir/data ]] || die "$dir/data exists; use restart, or remove it"

    # A --port=N among the extra args pins the port (no retries elsewhere).
    local fixed_port='' a
    for a in "$@"; do [[ $a == --port=* ]] && fixed_port=${a#--port=}; done

    local sock id port attempt rc
    sock=$(short_socket "$dir")
    id=$((SRANDOM % 4000000000 + 1))
    if (($#)); then printf '%s\0' "$@" >"$dir/args.extra"; else : >"$dir/args.extra"; fi
    for ((attempt = 1; attempt <= PORT_ATTEMPTS; attempt++)); do
        port=${fixed_port:-$(pick_port)}
        base_args "$flavor" "$dir" "$port" "$sock" "$id" >"$dir/args.base"
        # Fresh copy per attempt: a failed start may already have written
        # binlog files, and tests expect the first binlog to be .000001.
        fresh_data "$flavor" "$dir"
        rc=0
        launch_and_wait "$flavor" "$dir" "$port" || rc=$?
        if ((rc == 0)); then
            record_success "$flavor" "$dir" "$port" "$sock"
            return 0
        fi
        ((rc == 3)) && [[ -n $fixed_port ]] && printf 'server.sh: port %s is in use\n' "$port" >&2
        if ((rc != 3)) || [[ -n $fixed_port ]]; then break; fi
        printf 'server.sh: port %s taken, retrying with another\n' "$port" >&2
    done
    [[ $sock == /tmp/bintrail-sock.* ]] && rm -rf "${sock%/*}"
    die "could not start $flavor in $dir"
}

cmd_stop() {
    (($# == 1)) || usage
    local dir pid
    dir=$(realpath -m "$1")
    if pid=$(running_pid "$dir"); then
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
            printf 'server.sh: %s did not stop in %s s, sending SIGKILL\n' "$dir" "$STOP_TIMEOUT" >&2
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 10 || die "pid $pid survives SIGKILL"
        fi
    fi
    [[ -d $dir ]] && remove_socket_dir "$dir"
    return 0
}

cmd_kill() {
    (($# == 1)) || usage
    local dir pid
    dir=$(realpath -m "$1")
    if pid=$(running_pid "$dir"); then
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || die "pid $pid survives SIGKILL"
    fi
    return 0
}

cmd_restart() {
    (($# >= 1)) || usage
    local dir
    dir=$(realpath "$1")
    shift
    [[ -f $dir/args.base && -f $dir/flavor ]] || die "$dir was never started successfully"
    local flavor port sock
    flavor=$(cat "$dir/flavor")
    port=$(cat "$dir/port")
    sock=$(cat "$dir/socket")
    if (($# > 0)); then printf '%s\0' "$@" >"$dir/args.extra"; fi
    cmd_stop "$dir"
    # Same port by contract; a just-closed port can take a moment to be
    # bindable again, so retry briefly instead of moving.
    local attempt rc
    for attempt in 1 2 3 4 5; do
        rc=0
        launch_and_wait "$flavor" "$dir" "$port" || rc=$?
        if ((rc == 0)); then
            record_success "$flavor" "$dir" "$port" "$sock"
            return 0
        fi
        ((rc == 3)) || break
        printf 'server.sh: port %s busy (attempt %s)\n' "$port" "$attempt" >&2
        sleep 1
    done
    die "could not restart $flavor in $dir on port $port"
}

cmd_client() {
    (($# >= 1)) || usage
    local dir
    dir=$(realpath "$1")
    shift
    [[ -f $dir/port && -f $dir/flavor ]] || die "no server was started in $dir"
    local client
    client=$(client_bin "$(cat "$dir/flavor")")
    exec "$client" --no-defaults --protocol=TCP -h127.0.0.1 -P"$(cat "$dir/port")" -uroot "$@"
}

cmd_env() {
    local my ma m118
    my=$(flavor_dir mysql)
    ma=$(flavor_dir mariadb)
    m118=$(flavor_dir mariadb118)
    printf '%s=%q\n' \
        BINTRAIL_CACHE "$CACHE" \
        BINTRAIL_MYSQL_PREFIX "$my" \
        BINTRAIL_MYSQL_BIN "$my/bin" \
        BINTRAIL_MYSQL_VERSION "$(cat "$my/.provisioned")" \
        BINTRAIL_MYSQL_TEMPLATE "$my/template" \
        BINTRAIL_MARIADB_BIN "$ma/bin" \
        BINTRAIL_MARIADB_VERSION "$(cat "$ma/.provisioned")" \
        BINTRAIL_MARIADB_TEMPLATE "$ma/template" \
        BINTRAIL_MARIADB118_BIN "$m118/bin" \
        BINTRAIL_MARIADB118_VERSION "$(cat "$m118/.provisioned")" \
        BINTRAIL_MARIADB118_TEMPLATE "$m118/template"
}

(($# >= 1)) || usage
sub=$1
shift
case $sub in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kill) cmd_kill "$@" ;;
    restart) cmd_restart "$@" ;;
    client) cmd_client "$@" ;;
    env) cmd_env "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac

#!/usr/bin/env bash
# Usage: scripts/provision.sh
#
# Installs the two database servers the tests run against and builds a
# pre-initialized template data dir for each, under
#   ${BINTRAIL_CACHE:-$HOME/.cache/bintrail}/
#     mysql-<ver>/      Oracle MySQL from Debian sid, unpacked into a private
#                       prefix (never installed into the system). bin/ holds
#                       wrappers: mysqld mysql mysqlbinlog mysqladmin mysqldump
#     mysql-current     -> mysql-<ver>
#     mariadb-<ver>/    bin/ symlinks to the system's MariaDB (apt-installed
#                       from the machine's own release), template/
#     mariadb-current   -> mariadb-<ver>
#     mariadb-11.8.<n>/ MariaDB 11.8 from Debian trixie, unpacked into a
#                       private prefix like MySQL. bin/ holds wrappers:
#                       mariadbd mariadb my_print_defaults resolveip
#     mariadb118-current -> mariadb-11.8.<n>
# Each flavor dir has template/ (datadir with root@'%' and root@localhost,
# empty password) and a .provisioned stamp written last.
#
# Idempotent: once every stamp exists it only checks them (well under 2 s)
# and prints one "cached" line per flavor. To re-fetch MySQL from sid,
# delete the mysql-* dirs (MariaDB 11.8: mariadb118-current and the dir it
# points to). Environment knobs:
#   BINTRAIL_CACHE          cache dir (default $HOME/.cache/bintrail)
#   BINTRAIL_MYSQL_SERIES   required MySQL series from sid (default 9.7)
#   BINTRAIL_MARIADB_SERIES required MariaDB series from trixie (default 11.8)
#   BINTRAIL_DEBIAN_MIRROR  override the mirror read from /etc/apt
#   BINTRAIL_APT_KEYRING    keyring to verify sid and trixie with (default:
#                           the system's debian-archive-keyring)
#   BINTRAIL_SID_TRUSTED=1  last resort, see fetch_suite_lists (applies to
#                           trixie too)
set -euo pipefail

start_ns=$(date +%s%N)
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
CACHE=${BINTRAIL_CACHE:-$home/.cache/bintrail}
MYSQL_SERIES=${BINTRAIL_MYSQL_SERIES:-9.7}
MARIADB_SERIES=${BINTRAIL_MARIADB_SERIES:-11.8}
SYSTEM_KEYRING=${BINTRAIL_APT_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
export DEBIAN_FRONTEND=noninteractive

log() { printf 'provision: %s\n' "$*" >&2; }
die() { printf 'provision: error: %s\n' "$*" >&2; exit 1; }

finish() {
    local ms=$((($(date +%s%N) - start_ns) / 1000000))
    printf 'provision: total %d.%03d s\n' $((ms / 1000)) $((ms % 1000))
}

# ---------------------------------------------------------------------------
# Debian mirror discovery: the main archive entry of the system's own release,
# from deb822 *.sources or one-line *.list files. Never a hard-coded host, so
# the same script follows whatever mirror/proxy the machine is set up with.
debian_mirror() {
    if [[ -n ${BINTRAIL_DEBIAN_MIRROR:-} ]]; then
        echo "$BINTRAIL_DEBIAN_MIRROR"
        return
    fi
    local codename uri=
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [[ -n $codename ]] || die "cannot read VERSION_CODENAME from /etc/os-release"
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        # One paragraph per record; continuation lines are folded in.
        uri=$(awk -v want="$codename" '
            BEGIN { RS = ""; FS = "\n" }
            {
                delete fld; key = ""
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^#/) continue
                    if (line ~ /^[ \t]/ && key != "") { fld[key] = fld[key] " " line; continue }
                    p = index(line, ":"); if (!p) continue
                    key = tolower(substr(line, 1, p - 1))
                    fld[key] = substr(line, p + 1)
                }
                if (tolower(fld["enabled"]) ~ /no/) next
                if (fld["types"] !~ /(^|[ \t])deb([ \t]|$)/) next
                if (fld["components"] !~ /(^|[ \t])main([ \t]|$)/) next
                n = split(fld["suites"], s, /[ \t]+/)
                for (j = 1; j <= n; j++) if (s[j] == want) {
                    m = split(fld["uris"], u, /[ \t]+/)
                    for (k = 1; k <= m; k++) if (u[k] != "") { print u[k]; exit }
                }
            }' "$f")
        [[ -n $uri ]] && break
    done
    if [[ -z $uri ]]; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [[ -f $f ]] || continue
            # deb [opts] URI suite components...
            uri=$(awk -v want="$codename" '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                    if ($(i + 1) != want) next
                    for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit }
                }' "$f")
            [[ -n $uri ]] && break
        done
    fi
    [[ -n $uri ]] || die "no '$codename main' entry in the apt sources; set BINTRAIL_DEBIAN_MIRROR"
    echo "${uri%/}"
}

# ---------------------------------------------------------------------------
# A private apt: own sources, lists, cache and an empty dpkg status, so the
# system's apt state is neither read for packages nor modified. Sandbox user
# root because the download dir is a root-owned temp dir.
APT_STATE=
papt() {
    local tool=$1
    shift
    "$tool" -q \
        -o Dir::State="$APT_STATE" \
        -o Dir::State::Lists="$APT_STATE/lists" \
        -o Dir::State::status="$APT_STATE/status" \
        -o Dir::Cache="$APT_STATE/cache" \
        -o Dir::Etc::SourceList="$APT_STATE/sources.list" \
        -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::Etc::Preferences=/dev/null \
        -o Dir::Etc::PreferencesParts=/dev/null \
        -o APT::Architecture=amd64 -o APT::Architectures=amd64 \
        -o Acquire::Languages=none \
        -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false \
        -o APT::Sandbox::User=root \
        "$@"
}

papt_init() { # <state dir> <sources.list line>
    APT_STATE=$1
    mkdir -p "$APT_STATE/lists/partial" "$APT_STATE/cache/archives/partial"
    : >"$APT_STATE/status"
    echo "$2" >"$APT_STATE/sources.list"
}

# apt-get update exits 0 on some signature problems; the lists file present
# after the run is what tells whether the suite is usable.
papt_update_ok() {
    papt apt-get update >"$APT_STATE/update.log" 2>&1 || true
    compgen -G "$APT_STATE/lists/*_Packages*" >/dev/null
}

# A suite's InRelease (sid, trixie) is signed by the current automatic archive
# keys. Bookworm's keyring has them today; after a key rotation it may not.
# The sound fix is a chain of trust: the system keyring verifies 'stable',
# whose (hash-verified) debian-archive-keyring package carries the newer keys,
# which verify the suite. Only if that fails too, and only with
# BINTRAIL_SID_TRUSTED=1, is the suite used unverified ([trusted=yes]); never
# silently.
fetch_suite_lists() { # <work dir> <mirror> <suite>
    local work=$1 mirror=$2 suite=$3
    local state="$work/apt-$suite"
    papt_init "$state" "deb [signed-by=$SYSTEM_KEYRING] $mirror $suite main"
    papt_update_ok && return
    log "$suite not verifiable with $SYSTEM_KEYRING; trying the keyring from stable"
    sed 's/^/  /' "$state/update.log" >&2
    papt_init "$work/apt-stable" "deb [signed-by=$SYSTEM_KEYRING] $mirror stable main"
    if papt_update_ok && (cd "$work/apt-stable" && papt apt-get download debian-archive-keyring >/dev/null 2>&1); then
        dpkg-deb -x "$work"/apt-stable/debian-archive-keyring_*.deb "$work/keyring"
        local kr="$work/keyring/usr/share/keyrings/debian-archive-keyring.gpg"
        papt_init "$state" "deb [signed-by=$kr] $mirror $suite main"
        papt_update_ok && return
    fi
    if [[ ${BINTRAIL_SID_TRUSTED:-} == 1 ]]; then
        log "WARNING: using $suite WITHOUT signature verification (BINTRAIL_SID_TRUSTED=1)"
        papt_init "$state" "deb [trusted=yes] $mirror $suite main"
        papt_update_ok && return
    fi
    sed 's/^/  /' "$state/update.log" >&2
    die "cannot fetch a verified $suite package list (see above)"
}

# The runtime closure of <packages>, restricted to libraries (perl, needed
# only by helper scripts, and its private libs are left out), downloaded with
# the current private apt state and unpacked into <work>/prefix. The suites
# are merged-/usr: the loader lives at usr/lib64; it gets the usual path.
unpack_closure() { # <work dir> <label> <packages...>
    local work=$1 label=$2
    shift 2
    local keep
    keep=$(printf '%s$|' "$@")
    local pkgs
    mapfile -t pkgs < <(papt apt-cache depends --recurse --no-recommends --no-suggests \
        --no-conflicts --no-breaks --no-replaces --no-enhances "$@" |
        grep -v '^[[:space:]<]' | sort -u |
        grep -E "^(lib|zlib1g\$|openssl-provider|${keep%|})" |
        grep -vE '^lib(perl|gdbm|db5)')
    log "$label: downloading ${#pkgs[@]} packages"
    mkdir -p "$work/debs"
    (cd "$work/debs" && papt apt-get download "${pkgs[@]}" >"$work/download.log" 2>&1) ||
        { cat "$work/download.log" >&2; die "apt-get download failed"; }
    local prefix="$work/prefix" deb
    mkdir -p "$prefix/bin"
    for deb in "$work"/debs/*.deb; do
        dpkg-deb -x "$deb" "$prefix"
        # shellcheck disable=SC2016  # dpkg-deb expands these
        dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >>"$prefix/packages.txt"
    done
    rm -rf "$prefix/usr/share/doc" "$prefix/usr/share/man"
    ln -s usr/lib64 "$prefix/lib64"
    ln -s usr/lib "$prefix/lib"
}

# Moves a finished <work>/prefix to $CACHE/<dir> and points <link> at it;
# the .provisioned stamp is written last, so a killed run leaves no stamp.
install_prefix() { # <work dir> <version> <dir name> <link name>
    local work=$1 ver=$2 final="$CACHE/$3" link="$CACHE/$4"
    echo "$ver" >"$work/prefix/.provisioned"
    rm -rf "$final"
    mv -T "$work/prefix" "$final"
    ln -sfn "${final##*/}" "$CACHE/.$4.tmp"
    mv -T "$CACHE/.$4.tmp" "$link"
}

# ---------------------------------------------------------------------------
# MySQL from sid.
MYSQL_PKGS=(mysql-server-core mysql-client-core)
MYSQL_TOOLS=(mysqld mysql mysqlbinlog mysqladmin mysqldump)
# MySQL reads /etc/mysql/my.cnf, which on this machine belongs to MariaDB
# 10.11 and has options MySQL rejects (MariaDB 11.8 must not read 10.11's
# either); the wrappers therefore add --no-defaults unless the caller passes
# its own defaults option first (which must stay first). <extra> is inserted
# after that (a server's paths), <env> is shell text run before exec.
write_wrapper() { # <prefix> <tool> <path inside prefix> <suite> <defaults?> <extra> <env>
    local prefix=$1 tool=$2 rel=$3 suite=$4 defaults=$5 extra=$6 env=$7 lead_case
    if [[ $defaults == 1 ]]; then
        lead_case='case ${1:-} in
    --no-defaults | --defaults-file=* | --defaults-extra-file=* | --print-defaults) lead=("$1"); shift ;;
    *) lead=(--no-defaults) ;;
esac'
    else
        lead_case=''
    fi
    cat >"$prefix/bin/$tool" <<EOF
#!/usr/bin/env bash
# Generated by scripts/provision.sh. Runs Debian $suite's $tool through the
# prefix's own dynamic loader and libraries (the system's are too old);
# --inhibit-cache keeps the system's ld.so.cache out of the resolution.
set -euo pipefail
P=\$(dirname "\$(dirname "\$(readlink -f "\${BASH_SOURCE[0]}")")")
lead=()
$lead_case
# The suite's OpenSSL 3.5+ must not load the system's 3.0 provider modules.
export OPENSSL_MODULES="\$P/usr/lib/x86_64-linux-gnu/ossl-modules"
export GCONV_PATH="\$P/usr/lib/x86_64-linux-gnu/gconv"
$env
exec "\$P/lib64/ld-linux-x86-64.so.2" --inhibit-cache \\
    --library-path "\$P/usr/lib/x86_64-linux-gnu" \\
    "\$P/$rel" "\${lead[@]}" $extra "\$@"
EOF
    chmod 755 "$prefix/bin/$tool"
}

# Every library a binary resolves to must come from the prefix: a lib missing
# from the closure would otherwise be silently taken from the system.
check_resolution() { # <prefix> <file> <fatal?>
    local prefix=$1 file=$2 fatal=$3 line target bad=
    while IFS= read -r line; do
        line=${line#"${line%%[![:space:]]*}"}
        case $line in
            '' | linux-vdso* | "statically linked") continue ;;
            *' => '*) target=${line#* => } ;;
            *) target=$line ;;
        esac
        [[ $target == "$prefix"/* || $target == ./* ]] || bad+="  $line"$'\n'
    done < <("$prefix/lib64/ld-linux-x86-64.so.2" --inhibit-cache \
        --library-path "$prefix/usr/lib/x86_64-linux-gnu" --list "$file" 2>&1 || true)
    [[ -z $bad ]] && return
    [[ $fatal == 1 ]] && die "${file#"$prefix"/} resolves outside the prefix:"$'\n'"$bad"
    log "note: plugin ${file##*/} has unresolved deps (not used by the tests):"$'\n'"$bad"
}

init_sql() {
    # root@localhost only matches socket clients under --skip-name-resolve;
    # tests connect over TCP from 127.0.0.1, hence root@'%' (servers bind to
    # loopback only).
    cat <<'EOF'
CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
EOF
}

provision_mysql() {
    local cur="$CACHE/mysql-current"
    if [[ -f $cur/.provisioned ]]; then
        echo "mysql: cached $(cat "$cur/.provisioned") at $(readlink -f "$cur")"
        return
    fi
    [[ $(dpkg --print-architecture) == amd64 ]] || die "only amd64 is supported (loader name, lib paths)"

    local work
    work=$(mktemp -d "$CACHE/.mysql-tmp.XXXXXX")
    # shellcheck disable=SC2064  # expand now: $work is local
    trap "rm -rf '$work'" EXIT

    local mirror
    mirror=$(debian_mirror)
    log "mysql: fetching sid package lists from $mirror"
    fetch_suite_lists "$work" "$mirror" sid

    local ver
    ver=$(papt apt-cache show --no-all-versions mysql-server-core | sed -n 's/^Version: //p' | head -n1)
    [[ -n $ver ]] || die "sid has no mysql-server-core"
    [[ $ver == "$MYSQL_SERIES".* ]] ||
        die "sid's mysql-server-core is $ver, not $MYSQL_SERIES.x (set BINTRAIL_MYSQL_SERIES to accept it)"
    unpack_closure "$work" "mysql $ver" "${MYSQL_PKGS[@]}"

    local prefix="$work/prefix" tool rel extra
    for tool in "${MYSQL_TOOLS[@]}"; do
        extra=
        if [[ $tool == mysqld ]]; then
            rel=usr/sbin/mysqld
            # Debian's compiled-in paths point at /usr/share/mysql, which is
            # MariaDB's here; point the server at the prefix's own files.
            # shellcheck disable=SC2016  # $P is expanded by the wrapper
            extra='--basedir="$P/usr" --lc-messages-dir="$P/usr/share/mysql" --character-sets-dir="$P/usr/share/mysql/charsets" --plugin-dir="$P/usr/lib/mysql/plugin"'
        else
            rel=usr/bin/$tool
        fi
        [[ -x $prefix/$rel ]] || die "$rel missing from the sid packages"
        check_resolution "$prefix" "$prefix/$rel" 1
        write_wrapper "$prefix" "$tool" "$rel" sid 1 "$extra" ''
    done
    local so
    for so in "$prefix"/usr/lib/mysql/plugin/*.so; do
        check_resolution "$prefix" "$so" 0
    done
    "$prefix/bin/mysqld" --version >&2

    log "mysql: initializing template data dir"
    init_sql >"$work/init.sql"
    # Initialize without binlog (as --initialize does anyway); TLS material
    # (ca.pem, server-cert.pem, ...) is generated into the data dir here and
    # copied with it, so every server copy presents the same CA.
    if ! "$prefix/bin/mysqld" --no-defaults --initialize-insecure --user=root \
        --datadir="$prefix/template" --log-error="$work/init.log" \
        --init-file="$work/init.sql" --innodb-buffer-pool-size=64M; then
        cat "$work/init.log" >&2
        die "mysqld --initialize-insecure failed"
    fi
    rm -f "$prefix/template/auto.cnf" # each copy generates its own server_uuid

    local final="$CACHE/mysql-${ver%%-*}"
    install_prefix "$work" "$ver" "${final##*/}" mysql-current
    rm -rf "$work"
    trap - EXIT
    echo "mysql: provisioned $ver at $final"
}

# ---------------------------------------------------------------------------
# MariaDB from the machine's own release.
MARIADB_TOOLS=(mariadbd mariadb mariadb-install-db mariadb-binlog mariadb-admin mariadb-dump)

install_mariadb() {
    local missing=0 t
    for t in "${MARIADB_TOOLS[@]}"; do command -v "$t" >/dev/null || missing=1; done
    [[ $missing == 1 ]] || return 0
    log "mariadb: installing packages with apt-get"
    # The -core packages ship no service, but guard anyway: no daemon may be
    # started by the install (the tests start their own servers).
    local own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    local rc=0 aptlog="$CACHE/.mariadb-apt.log"
    apt_install() {
        apt-get install -y -q --no-install-recommends \
            mariadb-server-core mariadb-client-core mariadb-client </dev/null >>"$aptlog" 2>&1
    }
    # A fresh image has no package lists, an old one may list versions the
    # mirror no longer has: refresh the system lists only when needed.
    : >"$aptlog"
    apt_install || { apt-get update -q </dev/null >>"$aptlog" 2>&1 && apt_install; } || rc=$?
    if [[ $own_policy == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
    if [[ $rc != 0 ]]; then
        cat "$aptlog" >&2
        die "apt-get install of MariaDB failed"
    fi
    rm -f "$aptlog"
    for t in "${MARIADB_TOOLS[@]}"; do command -v "$t" >/dev/null || die "$t still missing after install"; done
}

all_executable() { # <dir> <names...>
    local dir=$1 t
    shift
    for t in "$@"; do [[ -x $dir/$t ]] || return 1; done
}

provision_mariadb() {
    local cur="$CACHE/mariadb-current" ver
    # The binaries are the system's, so the template is only valid for the
    # installed version: an apt upgrade leads to a new template.
    if command -v mariadbd >/dev/null; then
        ver=$(mariadbd --version | sed -n 's/.*Ver \([^ ]*\).*/\1/p')
        if [[ -f $cur/.provisioned && $(cat "$cur/.provisioned") == "$ver" ]] &&
            all_executable "$cur/bin" "${MARIADB_TOOLS[@]}"; then
            echo "mariadb: cached $ver at $(readlink -f "$cur")"
            return
        fi
    fi
    install_mariadb
    ver=$(mariadbd --version | sed -n 's/.*Ver \([^ ]*\).*/\1/p')

    local work
    work=$(mktemp -d "$CACHE/.mariadb-tmp.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    local prefix="$work/prefix" t
    mkdir -p "$prefix/bin"
    for t in "${MARIADB_TOOLS[@]}"; do ln -s "$(command -v "$t")" "$prefix/bin/$t"; done

    log "mariadb: initializing template data dir"
    {
        # The bootstrap runs with grant tables disabled; FLUSH PRIVILEGES
        # loads them so CREATE USER/GRANT work.
        echo 'FLUSH PRIVILEGES;'
        init_sql
    } >"$work/init.sql"
    if ! mariadb-install-db --no-defaults --user=root --auth-root-authentication-method=normal \
        --skip-test-db --skip-name-resolve --datadir="$prefix/template" \
        --extra-file="$work/init.sql" >"$work/init.log" 2>&1; then
        cat "$work/init.log" >&2
        die "mariadb-install-db failed"
    fi

    local final="$CACHE/mariadb-${ver%%-*}"
    echo "$ver" >"$prefix/.provisioned"
    rm -rf "$final"
    mv -T "$prefix" "$final"
    ln -sfn "${final##*/}" "$CACHE/.mariadb-current.tmp"
    mv -T "$CACHE/.mariadb-current.tmp" "$cur"
    rm -rf "$work"
    trap - EXIT
    echo "mariadb: provisioned $ver at $final"
}

# ---------------------------------------------------------------------------
# MariaDB 11.8 (the current long-term release) from Debian trixie, the same
# way as MySQL from sid: trixie's libc is newer than bookworm's (mariadbd
# needs glibc 2.38), so its binaries run through trixie's own loader.
MARIADB118_PKGS=(mariadb-server-core mariadb-client-core)
MARIADB118_TOOLS=(mariadbd:usr/sbin/mariadbd mariadb:usr/bin/mariadb
    my_print_defaults:usr/bin/my_print_defaults resolveip:usr/bin/resolveip)

provision_mariadb118() {
    local cur="$CACHE/mariadb118-current"
    if [[ -f $cur/.provisioned ]]; then
        echo "mariadb118: cached $(cat "$cur/.provisioned") at $(readlink -f "$cur")"
        return
    fi
    [[ $(dpkg --print-architecture) == amd64 ]] || die "only amd64 is supported (loader name, lib paths)"

    local work
    work=$(mktemp -d "$CACHE/.mariadb118-tmp.XXXXXX")
    # shellcheck disable=SC2064  # expand now: $work is local
    trap "rm -rf '$work'" EXIT

    local mirror
    mirror=$(debian_mirror)
    log "mariadb118: fetching trixie package lists from $mirror"
    fetch_suite_lists "$work" "$mirror" trixie

    local ver upstream
    ver=$(papt apt-cache show --no-all-versions mariadb-server-core | sed -n 's/^Version: //p' | head -n1)
    [[ -n $ver ]] || die "trixie has no mariadb-server-core"
    # 1:11.8.9+ds-0+deb13u1 -> 11.8.9
    upstream=${ver#*:}
    upstream=${upstream%%[+-]*}
    [[ $upstream == "$MARIADB_SERIES".* ]] ||
        die "trixie's mariadb-server-core is $ver, not $MARIADB_SERIES.x (set BINTRAIL_MARIADB_SERIES to accept it)"
    unpack_closure "$work" "mariadb118 $ver" "${MARIADB118_PKGS[@]}"

    local prefix="$work/prefix" t tool rel extra env defaults
    for t in "${MARIADB118_TOOLS[@]}"; do
        tool=${t%%:*} rel=${t#*:} extra= env= defaults=1
        [[ -x $prefix/$rel ]] || die "$rel missing from the trixie packages"
        check_resolution "$prefix" "$prefix/$rel" 1
        case $tool in
            mariadbd)
                # Debian's compiled-in paths are the system's MariaDB 10.11
                # files; point the server at the prefix's own.
                # shellcheck disable=SC2016  # $P is expanded by the wrapper
                extra='--basedir="$P/usr" --lc-messages-dir="$P/usr/share/mariadb" --character-sets-dir="$P/usr/share/mariadb/charsets" --plugin-dir="$P/usr/lib/mysql/plugin"'
                ;;
            mariadb)
                # libmariadb's client auth plugins: the prefix's, not 10.11's.
                # shellcheck disable=SC2016
                env='export MARIADB_PLUGIN_DIR="$P/usr/lib/x86_64-linux-gnu/libmariadb3/plugin"'
                ;;
            resolveip) defaults=0 ;;
        esac
        write_wrapper "$prefix" "$tool" "$rel" trixie "$defaults" "$extra" "$env"
    done
    "$prefix/bin/mariadbd" --version >&2

    # mariadb-install-db (a shell script) finds everything under --basedir:
    # bin/my_print_defaults, sbin/mariadbd, share/mariadb/*.sql.
    mkdir -p "$prefix/sbin"
    ln -s ../bin/mariadbd "$prefix/sbin/mariadbd"
    ln -s usr/share "$prefix/share"
    log "mariadb118: initializing template data dir"
    {
        echo 'FLUSH PRIVILEGES;'
        init_sql
    } >"$work/init.sql"
    if ! bash "$prefix/usr/bin/mariadb-install-db" --no-defaults --basedir="$prefix" \
        --user=root --auth-root-authentication-method=normal --skip-test-db \
        --skip-name-resolve --datadir="$prefix/template" \
        --extra-file="$work/init.sql" >"$work/init.log" 2>&1; then
        cat "$work/init.log" >&2
        die "mariadb-install-db (11.8) failed"
    fi

    local final="$CACHE/mariadb-$upstream"
    install_prefix "$work" "$ver" "${final##*/}" mariadb118-current
    rm -rf "$work"
    trap - EXIT
    echo "mariadb118: provisioned $ver at $final"
}

# ---------------------------------------------------------------------------
# Tools the service, packaging and TLS tests call: systemd-analyze (package
# systemd; it is only run offline, never started as PID 1 here), openssl
# (test certificates), unshare/mount (util-linux, mount: essential on Debian)
# and dpkg-deb (dpkg). Nothing is done when they are all present.
TEST_TOOLS=(systemd-analyze:systemd openssl:openssl unshare:util-linux mount:mount dpkg-deb:dpkg)

install_test_tools() {
    local want=() t
    for t in "${TEST_TOOLS[@]}"; do
        command -v "${t%%:*}" >/dev/null || want+=("${t#*:}")
    done
    ((${#want[@]})) || return 0
    log "installing ${want[*]} with apt-get (for the service and TLS tests)"
    local own_policy=0 rc=0 aptlog="$CACHE/.tools-apt.log"
    # Installing systemd into a container must not start anything.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    : >"$aptlog"
    apt_tools() { apt-get install -y -q --no-install-recommends "${want[@]}" </dev/null >>"$aptlog" 2>&1; }
    apt_tools || { apt-get update -q </dev/null >>"$aptlog" 2>&1 && apt_tools; } || rc=$?
    if [[ $own_policy == 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
    if [[ $rc != 0 ]]; then
        cat "$aptlog" >&2
        die "apt-get install of ${want[*]} failed"
    fi
    rm -f "$aptlog"
    for t in "${TEST_TOOLS[@]}"; do
        command -v "${t%%:*}" >/dev/null || die "${t%%:*} still missing after installing ${t#*:}"
    done
}

mkdir -p "$CACHE"
# Concurrent provisions (two test runs at once) would race on apt and on the
# final renames; serialize them.
exec 9>"$CACHE/.provision.lock"
flock 9
# Leftovers of a provision that was killed mid-way (we hold the lock, so no
# other run is using them).
rm -rf "$CACHE"/.mysql-tmp.* "$CACHE"/.mariadb-tmp.* "$CACHE"/.mariadb118-tmp.*
provision_mysql
provision_mariadb
provision_mariadb118
install_test_tools
finish

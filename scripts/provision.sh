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
# Each flavor dir has template/ (datadir with root@'%' and root@localhost,
# empty password) and a .provisioned stamp written last.
#
# Idempotent: once both stamps exist it only checks them (well under 2 s)
# and prints one "cached" line per flavor. To re-fetch MySQL from sid,
# delete the mysql-* dirs. Environment knobs:
#   BINTRAIL_CACHE          cache dir (default $HOME/.cache/bintrail)
#   BINTRAIL_MYSQL_SERIES   required MySQL series from sid (default 9.7)
#   BINTRAIL_DEBIAN_MIRROR  override the mirror read from /etc/apt
#   BINTRAIL_APT_KEYRING    keyring to verify sid with (default: the
#                           system's debian-archive-keyring)
#   BINTRAIL_SID_TRUSTED=1  last resort, see fetch_sid_lists
set -euo pipefail

start_ns=$(date +%s%N)
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
CACHE=${BINTRAIL_CACHE:-$home/.cache/bintrail}
MYSQL_SERIES=${BINTRAIL_MYSQL_SERIES:-9.7}
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

# sid's InRelease is signed by the current automatic archive keys. Bookworm's
# keyring has them today; after a key rotation it may not. The sound fix is a
# chain of trust: the system keyring verifies 'stable', whose (hash-verified)
# debian-archive-keyring package carries the newer keys, which verify sid.
# Only if that fails too, and only with BINTRAIL_SID_TRUSTED=1, is sid used
# unverified ([trusted=yes]); never silently.
fetch_sid_lists() { # <work dir> <mirror>
    local work=$1 mirror=$2
    papt_init "$work/apt-sid" "deb [signed-by=$SYSTEM_KEYRING] $mirror sid main"
    papt_update_ok && return
    log "sid not verifiable with $SYSTEM_KEYRING; trying the keyring from stable"
    sed 's/^/  /' "$work/apt-sid/update.log" >&2
    papt_init "$work/apt-stable" "deb [signed-by=$SYSTEM_KEYRING] $mirror stable main"
    if papt_update_ok && (cd "$work/apt-stable" && papt apt-get download debian-archive-keyring >/dev/null 2>&1); then
        dpkg-deb -x "$work"/apt-stable/debian-archive-keyring_*.deb "$work/keyring"
        local kr="$work/keyring/usr/share/keyrings/debian-archive-keyring.gpg"
        papt_init "$work/apt-sid" "deb [signed-by=$kr] $mirror sid main"
        papt_update_ok && return
    fi
    if [[ ${BINTRAIL_SID_TRUSTED:-} == 1 ]]; then
        log "WARNING: using sid WITHOUT signature verification (BINTRAIL_SID_TRUSTED=1)"
        papt_init "$work/apt-sid" "deb [trusted=yes] $mirror sid main"
        papt_update_ok && return
    fi
    sed 's/^/  /' "$work/apt-sid/update.log" >&2
    die "cannot fetch a verified sid package list (see above)"
}

# ---------------------------------------------------------------------------
# MySQL from sid.
MYSQL_PKGS=(mysql-server-core mysql-client-core)
MYSQL_TOOLS=(mysqld mysql mysqlbinlog mysqladmin mysqldump)
# MySQL reads /etc/mysql/my.cnf, which on this machine belongs to MariaDB and
# has options MySQL rejects; the wrappers therefore add --no-defaults unless
# the caller passes its own defaults option first (which must stay first).
write_wrapper() { # <prefix> <tool> <path inside prefix> <is server>
    local prefix=$1 tool=$2 rel=$3 server=$4 extra=
    if [[ $server == 1 ]]; then
        # Debian's compiled-in paths point at /usr/share/mysql, which is
        # MariaDB's here; point the server at the prefix's own files.
        # shellcheck disable=SC2016  # $P is expanded by the wrapper
        extra='--basedir="$P/usr" --lc-messages-dir="$P/usr/share/mysql" --character-sets-dir="$P/usr/share/mysql/charsets" --plugin-dir="$P/usr/lib/mysql/plugin"'
    fi
    cat >"$prefix/bin/$tool" <<EOF
#!/usr/bin/env bash
# Generated by scripts/provision.sh. Runs Debian sid's $tool through the
# prefix's own dynamic loader and libraries (the system's are too old);
# --inhibit-cache keeps the system's ld.so.cache out of the resolution.
set -euo pipefail
P=\$(dirname "\$(dirname "\$(readlink -f "\${BASH_SOURCE[0]}")")")
lead=()
case \${1:-} in
    --no-defaults | --defaults-file=* | --defaults-extra-file=* | --print-defaults) lead=("\$1"); shift ;;
    *) lead=(--no-defaults) ;;
esac
# OpenSSL 3.6 must not load the system's 3.0 provider modules.
export OPENSSL_MODULES="\$P/usr/lib/x86_64-linux-gnu/ossl-modules"
export GCONV_PATH="\$P/usr/lib/x86_64-linux-gnu/gconv"
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
    fetch_sid_lists "$work" "$mirror"

    local ver
    ver=$(papt apt-cache show --no-all-versions mysql-server-core | sed -n 's/^Version: //p' | head -n1)
    [[ -n $ver ]] || die "sid has no mysql-server-core"
    [[ $ver == "$MYSQL_SERIES".* ]] ||
        die "sid's mysql-server-core is $ver, not $MYSQL_SERIES.x (set BINTRAIL_MYSQL_SERIES to accept it)"

    # The runtime closure of the two packages, restricted to libraries: perl
    # (needed only by helper scripts) and its private libs are left out.
    local pkgs
    mapfile -t pkgs < <(papt apt-cache depends --recurse --no-recommends --no-suggests \
        --no-conflicts --no-breaks --no-replaces --no-enhances "${MYSQL_PKGS[@]}" |
        grep -v '^[[:space:]<]' | sort -u |
        grep -E '^(lib|zlib1g$|openssl-provider|mysql-(server|client)-core$)' |
        grep -vE '^lib(perl|gdbm|db5)')
    log "mysql: downloading $ver and ${#pkgs[@]} packages"
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
    # sid is merged-/usr: the loader lives at usr/lib64; give it the usual path.
    ln -s usr/lib64 "$prefix/lib64"
    ln -s usr/lib "$prefix/lib"

    local tool rel
    for tool in "${MYSQL_TOOLS[@]}"; do
        if [[ $tool == mysqld ]]; then rel=usr/sbin/mysqld; else rel=usr/bin/$tool; fi
        [[ -x $prefix/$rel ]] || die "$rel missing from the sid packages"
        check_resolution "$prefix" "$prefix/$rel" 1
        write_wrapper "$prefix" "$tool" "$rel" "$([[ $tool == mysqld ]] && echo 1 || echo 0)"
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
    echo "$ver" >"$prefix/.provisioned"
    rm -rf "$final"
    mv -T "$prefix" "$final"
    ln -sfn "${final##*/}" "$CACHE/.mysql-current.tmp"
    mv -T "$CACHE/.mysql-current.tmp" "$cur"
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
rm -rf "$CACHE"/.mysql-tmp.* "$CACHE"/.mariadb-tmp.*
provision_mysql
provision_mariadb
install_test_tools
finish

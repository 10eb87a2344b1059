#!/usr/bin/env bash
# Usage: scripts/package-deb.sh [--binary PATH] [--out DIR] [--version VERSION] [--compression xz|gzip|none]
#
# Builds bintrail_<version>_<arch>.deb with dpkg-deb (no network, no debhelper) and prints its
# path. Contents:
#   /usr/bin/bintrail                                  the binary, stripped (default
#                                                      target/release/bintrail, built with cargo if
#                                                      missing; that build itself is left unstripped)
#   /usr/share/bintrail/bintrail-stream.service.in     the unit template `bintrail service install` fills
#   /usr/share/doc/bintrail/examples/stream.env.example  an example environment file
#   /usr/share/doc/bintrail/{README.md,CHANGELOG.md,copyright}
#   /usr/lib/sysusers.d/bintrail.conf                  the system user "bintrail" (created by postinst)
#   /etc/bintrail/                                     where stream-<ID>.env files go
# Then: bintrail service install --server-id ID ...; systemctl enable --now bintrail-stream-ID
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

die() { printf 'package-deb: %s\n' "$*" >&2; exit 1; }

binary=target/release/bintrail
out=target/debian
version=
compression=xz
while (($#)); do
    case $1 in
        --binary) binary=${2:?}; shift 2 ;;
        --out) out=${2:?}; shift 2 ;;
        --version) version=${2:?}; shift 2 ;;
        --compression) compression=${2:?}; shift 2 ;;
        *) sed -n '2,/^set -euo/{/^set/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2 ;;
    esac
done
if [[ -z $version ]]; then
    version=$(sed -n '/^\[package\]/,/^\[/{s/^version *= *"\(.*\)"/\1/p}' Cargo.toml | head -n1)
fi
[[ -n $version ]] || die "cannot read the version from Cargo.toml"
if [[ ! -x $binary && $binary == target/release/bintrail ]]; then
    cargo build --release --locked >&2
fi
[[ -x $binary ]] || die "no executable at $binary"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (package dpkg)"

arch=$(dpkg --print-architecture)
# The newest glibc symbol version the binary uses, as the libc6 dependency.
libc=2.31
if command -v objdump >/dev/null; then
    found=$(objdump -T "$binary" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1 || true)
    [[ -n $found ]] && libc=$found
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
doc=$root/usr/share/doc/bintrail
install -D -m 0755 "$binary" "$root/usr/bin/bintrail"
# Stripped as Debian's dh_strip does (the release build carries line tables for profiling; the
# unstripped build stays where it was built, for perf and backtraces with file:line).
if command -v strip >/dev/null; then
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$root/usr/bin/bintrail"
else
    die "strip is missing (package binutils): the package would ship the binary's debug sections"
fi
install -D -m 0644 packaging/bintrail-stream.service.in "$root/usr/share/bintrail/bintrail-stream.service.in"
install -D -m 0644 packaging/stream.env.example "$doc/examples/stream.env.example"
install -D -m 0644 README.md "$doc/README.md"
install -D -m 0644 CHANGELOG.md "$doc/CHANGELOG.md"
install -d -m 0755 "$root/etc/bintrail" "$root/usr/lib/sysusers.d"
printf 'u bintrail - "bintrail binlog streams" /nonexistent /usr/sbin/nologin\n' >"$root/usr/lib/sysusers.d/bintrail.conf"
chmod 0644 "$root/usr/lib/sysusers.d/bintrail.conf"
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: bintrail

Files: *
Copyright: the bintrail authors
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
chmod 0644 "$doc/copyright"

mkdir -p "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<CONTROL
Package: bintrail
Version: $version
Architecture: $arch
Maintainer: bintrail maintainers <bintrail@localhost>
Section: database
Priority: optional
Depends: libc6 (>= $libc)
Recommends: systemd
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Description: streams a MySQL/MariaDB binlog into a queryable change index
 bintrail connects to a MySQL or MariaDB server as a replica and writes every
 row change, with full before and after images, into tables of a MySQL
 database, checkpointed in the same transactions. One systemd unit per source
 server: bintrail service install --server-id ID ... writes it.
CONTROL
cat >"$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
# Creates the system user the units run as (they fall back to a dynamic user without it).
set -e
if [ "$1" = configure ]; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers bintrail.conf
    elif ! getent passwd bintrail >/dev/null; then
        adduser --system --group --no-create-home --home /nonexistent bintrail
    fi
fi
exit 0
POSTINST
chmod 0755 "$root/DEBIAN/postinst"

mkdir -p "$out"
deb="$out/bintrail_${version}_${arch}.deb"
dpkg-deb --root-owner-group "-Z$compression" --build "$root" "$deb" >&2
echo "$deb"

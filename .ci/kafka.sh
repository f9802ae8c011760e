#!/usr/bin/env bash
# A Kafka-protocol broker for the kafka connector tests (crates/weir/tests/kafka.rs), and what
# building weir with `--features weir/kafka` needs.
#
#   eval "$(bash .ci/kafka.sh)"   # then: cargo test --workspace --features weir/kafka --test kafka
#
# Installs cmake (rdkafka builds librdkafka from source), zlib and curl headers with apt, and the
# tansu broker from crates.io into $HOME/.cache/weir-tools (built once, ~15 minutes on two
# cores, then reused); starts tansu on 127.0.0.1:$WEIR_KAFKA_PORT (9092) with a fresh SQLite
# file as its storage unless something already listens there; waits until it accepts
# connections. Prints only `export WEIR_TEST_KAFKA_BROKERS=...` and `export WEIR_TEST_KAFKA_PID=...`
# (set when it started the broker) on stdout; progress
# goes to stderr.
#
# SQLite, not tansu's in-memory engine: that one answers a fetch from an offset inside a
# record batch with the batches after it, so a consumer resuming mid-batch (as weir does after
# a crash) would silently miss the rest of that batch. The SQLite engine stores records one by
# one and fetches from the exact offset, as Kafka does.
set -euo pipefail

port="${WEIR_KAFKA_PORT:-9092}"
tools="$HOME/.cache/weir-tools"
tansu_version="0.6.0"
tansu_features="libsql"
log() { echo "kafka.sh: $*" >&2; }

apt_install() {
  apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; }
}

# librdkafka's cmake build (as rdkafka-sys 4.10 runs it) compiles against curl's headers.
has_curl_h() { [ -f /usr/include/curl/curl.h ] || compgen -G "/usr/include/*/curl/curl.h" >/dev/null; }
if ! command -v cmake >/dev/null 2>&1 || [ ! -f /usr/include/zlib.h ] || ! has_curl_h; then
  log "installing cmake, zlib1g-dev and libcurl4-openssl-dev (apt)"
  apt_install cmake zlib1g-dev libcurl4-openssl-dev \
    || { log "could not install cmake / zlib1g-dev / libcurl4-openssl-dev"; exit 1; }
fi

tansu="$tools/bin/tansu"
stamp="$tools/tansu.build"
if [ ! -x "$tansu" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$tansu_version $tansu_features" ]; then
  log "building tansu $tansu_version from crates.io into $tools (once; takes a while)"
  mkdir -p "$tools"
  # Its own target dir, so the build does not wait for (or hold) the workspace's build lock.
  CARGO_TARGET_DIR="$HOME/.cache/weir-tools-build" nice -n 19 \
    cargo install tansu --version "$tansu_version" --locked --force --features "$tansu_features" \
      --root "$tools" ${WEIR_TOOLS_JOBS:+-j "$WEIR_TOOLS_JOBS"} >&2
  rm -rf "$HOME/.cache/weir-tools-build"
  echo "$tansu_version $tansu_features" >"$stamp"
fi

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if listening; then
  log "something already listens on 127.0.0.1:$port; using it"
else
  log "starting tansu on 127.0.0.1:$port (storage $tools/tansu-$port.db, log in $tools/tansu.log)"
  rm -f "$tools/tansu-$port.db"*
  # The sqlite:// path is relative to the working directory.
  cd "$tools"
  nohup setsid "$tansu" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "sqlite://tansu-$port.db" \
    >"$tools/tansu.log" 2>&1 </dev/null &
  pid=$!
  for _ in $(seq 1 100); do
    listening && break
    sleep 0.2
  done
  if ! listening; then
    log "tansu did not start; its log:"
    tail -n 30 "$tools/tansu.log" >&2 || true
    exit 1
  fi
fi

echo "export WEIR_TEST_KAFKA_BROKERS=127.0.0.1:$port"
# The broker this script started (none when one was running already), for stopping it.
echo "export WEIR_TEST_KAFKA_PID=${pid:-}"

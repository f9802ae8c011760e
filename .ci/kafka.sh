#!/usr/bin/env bash
# A Kafka-protocol broker for the kafka connector tests (crates/weir/tests/kafka.rs), and what
# building weir with `--features weir/kafka` needs.
#
#   eval "$(bash .ci/kafka.sh)"   # then: cargo test --workspace --features weir/kafka --test kafka
#
# Installs cmake (rdkafka builds librdkafka from source) and zlib headers with apt, and the
# tansu broker from crates.io into $HOME/.cache/weir-tools (built once, ~15 minutes on two
# cores, then reused); starts tansu on 127.0.0.1:$WEIR_KAFKA_PORT (9092) with in-memory
# storage unless something already listens there; waits until it accepts connections. Prints
# only the `export WEIR_TEST_KAFKA_BROKERS=...` line on stdout; progress goes to stderr.
set -euo pipefail

port="${WEIR_KAFKA_PORT:-9092}"
tools="$HOME/.cache/weir-tools"
tansu_version="0.6.0"
log() { echo "kafka.sh: $*" >&2; }

apt_install() {
  apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; }
}

if ! command -v cmake >/dev/null 2>&1 || [ ! -f /usr/include/zlib.h ]; then
  log "installing cmake and zlib1g-dev (apt)"
  apt_install cmake zlib1g-dev || { log "could not install cmake / zlib1g-dev"; exit 1; }
fi

tansu="$tools/bin/tansu"
if [ ! -x "$tansu" ]; then
  log "building tansu $tansu_version from crates.io into $tools (once; takes a while)"
  mkdir -p "$tools"
  # Its own target dir, so the build does not wait for (or hold) the workspace's build lock.
  CARGO_TARGET_DIR="$HOME/.cache/weir-tools-build" nice -n 19 \
    cargo install tansu --version "$tansu_version" --locked --features dynostore \
      --root "$tools" ${WEIR_TOOLS_JOBS:+-j "$WEIR_TOOLS_JOBS"} >&2
  rm -rf "$HOME/.cache/weir-tools-build"
fi

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if listening; then
  log "something already listens on 127.0.0.1:$port; using it"
else
  log "starting tansu on 127.0.0.1:$port (in-memory storage, log in $tools/tansu.log)"
  nohup setsid "$tansu" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "memory://tansu/" \
    >"$tools/tansu.log" 2>&1 </dev/null &
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

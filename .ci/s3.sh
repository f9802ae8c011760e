#!/usr/bin/env bash
# An S3-compatible server for the tests of the lake on object storage
# (crates/weir-lake/tests/s3.rs, crates/weir/tests/s3_lake.rs).
#
#   eval "$(bash .ci/s3.sh)"   # then: cargo test --workspace --test s3 --test s3_lake
#
# Installs s3s-fs from crates.io into $HOME/.cache/weir-tools (built once, a few minutes, then
# reused; 0.14.1 is the newest release that builds with weir's Rust), starts it on a free
# loopback port over a fresh directory holding one bucket, and waits until it accepts
# connections. Prints only `export ...` lines on stdout: the endpoint, the bucket, the
# credentials, and the server's pid and directory (to stop it and clean up); progress goes to
# stderr.
set -euo pipefail

tools="$HOME/.cache/weir-tools"
s3s_version="0.14.1"
bucket="${WEIR_TEST_S3_BUCKET:-weir-test}"
access_key="weir-test-access-key"
secret_key="weir-test-secret-key"
log() { echo "s3.sh: $*" >&2; }

s3s="$tools/bin/s3s-fs"
if [ ! -x "$s3s" ]; then
  log "building s3s-fs $s3s_version from crates.io into $tools (once)"
  mkdir -p "$tools"
  # Its own target dir, so the build does not wait for (or hold) the workspace's build lock.
  CARGO_TARGET_DIR="$HOME/.cache/weir-tools-target" nice -n 19 \
    cargo install s3s-fs --version "$s3s_version" --features binary --locked \
      --root "$tools" ${WEIR_TOOLS_JOBS:+-j "$WEIR_TOOLS_JOBS"} >&2
fi

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    return
  fi
  for p in $(seq 19000 19999); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  return 1
}

port="$(free_port)"
root="$(mktemp -d "${TMPDIR:-/tmp}/weir-s3.XXXXXX")"
# s3s-fs serves each directory under its root as a bucket.
mkdir -p "$root/$bucket"
log "starting s3s-fs on 127.0.0.1:$port over $root (bucket $bucket, log in $root.log)"
nohup setsid "$s3s" --host 127.0.0.1 --port "$port" \
  --access-key "$access_key" --secret-key "$secret_key" "$root" \
  >"$root.log" 2>&1 </dev/null &
pid=$!

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
for _ in $(seq 1 100); do
  listening && break
  sleep 0.1
done
if ! listening; then
  log "s3s-fs did not start; its log:"
  tail -n 30 "$root.log" >&2 || true
  kill "$pid" 2>/dev/null || true
  exit 1
fi

echo "export WEIR_TEST_S3_ENDPOINT=http://127.0.0.1:$port WEIR_TEST_S3_BUCKET=$bucket AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret_key"
echo "export WEIR_TEST_S3_PID=$pid WEIR_TEST_S3_ROOT=$root"

#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), then builds and runs every test
# (unit, integration against a real RTSP server and real media, CLI) and checks that the
# benchmarks compile and run once. Used by .ci/run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v cargo >/dev/null || { echo "test: cargo not found: install a Rust toolchain (1.85 or newer, e.g. with rustup)" >&2; exit 1; }
scripts/setup.sh --test
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/models/onnxruntime/libonnxruntime.so.1.31.1}"
# Integration tests start several RTSP servers and services at once; two jobs keep a 2-core
# machine responsive enough for their timeouts. --no-fail-fast: a failing test binary does not
# hide the results of the ones after it (the exit status still says that one failed).
RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}" cargo test --locked --all-targets --no-fail-fast

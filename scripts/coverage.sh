#!/usr/bin/env bash
# Line coverage of the unit and cross-service tests (the real binaries, instrumented, started by
# the system tests), per crate, written to COVERAGE.md. Uses cargo-llvm-cov (installed when
# missing) with the LLVM tools of rustc's own LLVM version. Only the workspace's crates are
# instrumented; the build is one of its own, in $KTRDR_COVERAGE_TARGET_DIR (default: coverage/
# in the target directory).
#
# scripts/coverage.sh               the whole workspace (make coverage)
# scripts/coverage.sh -p CRATE …    only those crates' tests (no binaries built)
set -euo pipefail
cd "$(dirname "$0")/.."

# LLVM tools of rustc's LLVM version: Debian's llvm-N when installed, else rustup's
# llvm-tools component (which cargo-llvm-cov adds itself).
major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
llvm="/usr/lib/llvm-$major/bin"
if [ -x "$llvm/llvm-profdata" ] && [ -x "$llvm/llvm-cov" ]; then
  export LLVM_COV="$llvm/llvm-cov" LLVM_PROFDATA="$llvm/llvm-profdata"
elif ! command -v rustup >/dev/null; then
  echo "coverage needs LLVM $major's tools (rustc uses LLVM $major): apt-get install llvm-$major" >&2
  exit 2
fi
if ! cargo llvm-cov --version >/dev/null 2>&1; then
  cargo install cargo-llvm-cov --locked
fi

export CARGO_TARGET_DIR="${KTRDR_COVERAGE_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/coverage}"
source <(cargo llvm-cov show-env --sh)
cargo llvm-cov clean --workspace
selection=("$@")
if [ ${#selection[@]} -eq 0 ]; then
  selection=(--workspace)
  # The system tests start the binaries from the same target directory, so they run
  # instrumented too and write their profiles beside the tests' (the harness stops them with
  # SIGTERM under coverage, so they exit and write them).
  cargo build --workspace --bins
fi
# A failing test still leaves its coverage; the report is written and the exit status kept.
status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run "${selection[@]}" --no-fail-fast || status=$?
else
  cargo test "${selection[@]}" --no-fail-fast || status=$?
fi
# A process the tests kill -9 may leave a torn profile, which would fail the whole merge.
profdata="${LLVM_PROFDATA:-$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata}"
for profile in "$CARGO_LLVM_COV_TARGET_DIR"/*.profraw; do
  if ! "$profdata" show "$profile" >/dev/null 2>&1; then
    echo "leaving out the torn profile $profile" >&2
    rm -f "$profile"
  fi
done
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
cargo llvm-cov report --json --summary-only --output-path "$summary"
cargo metadata --no-deps --format-version 1 |
  python3 scripts/coverage_table.py "$summary" "\`scripts/coverage.sh ${*:-}\` (cargo llvm-cov over cargo nextest run ${selection[*]})" >COVERAGE.md
cat COVERAGE.md
if [ "$status" -ne 0 ]; then
  echo "some tests failed (exit $status); the figures above include the runs that did" >&2
fi
exit "$status"

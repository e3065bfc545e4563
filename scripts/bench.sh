#!/usr/bin/env bash
# Runs every benchmark in release mode and writes BENCHMARKS.md with the figures, how they were
# taken and on which machine, and first the goals: each benchmark prints a line
# "Goal: WHAT: MEASURED (goal GOAL): **met**" (or **not met**) from the figures of its own run,
# and they are gathered into the "Goals" section at the top.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --workspace --bins --release
# PyTorch (CPU) for the training comparison, from PyPI into the bench's own venv.
venv="${CARGO_TARGET_DIR:-target}/bench-venv"
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --only-binary :all: "torch==2.15.0"
fi
export KTRDR_BENCH_PYTHON="$venv/bin/python"
section=$(mktemp)
trap 'rm -f "$section"' EXIT
cargo bench -p ktrdr-system-tests --bench grpc 2>/dev/null >"$section"
echo >>"$section"
cargo bench -p ktrdr-system-tests --bench data 2>/dev/null >>"$section"
echo >>"$section"
cargo bench -p ktrdr-system-tests --bench gateway 2>/dev/null >>"$section"
echo >>"$section"
cargo bench -p ktrdr-system-tests --bench burst 2>/dev/null >>"$section"
echo >>"$section"
cargo bench -p ktrdr-system-tests --bench training 2>/dev/null >>"$section"
echo >>"$section"
cargo bench -p ktrdr-strategy --bench mlp_training 2>/dev/null >>"$section"
echo >>"$section"
cargo bench -p ktrdr-strategy --bench pipeline 2>/dev/null >>"$section"
echo >>"$section"
cargo bench -p ktrdr-backtest --bench simulate 2>/dev/null >>"$section"
echo >>"$section"
cargo bench -p ktrdr-system-tests --bench backtest 2>/dev/null >>"$section"
echo >>"$section"
cargo bench -p ktrdr-system-tests --bench ib 2>/dev/null >>"$section"

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo unknown)
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null || echo unknown)
{
  echo "# ktrdr benchmarks"
  echo
  echo "Written by \`make bench\` ($(date -u +%Y-%m-%dT%H:%MZ)); regenerate it rather than editing it."
  echo
  echo "- machine: $(nproc) cores ($cpu), $mem memory, $(uname -sr)"
  echo "- toolchain: $(rustc --version)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- method: the benchmark programs in \`tests/benches/\` start the real release binaries as"
  echo "  processes and call them over gRPC on 127.0.0.1; client and servers share the machine."
  echo "  Wall-clock figures from one run; expect ±15 % between runs on a shared VM."
  echo
  echo "## Goals"
  echo
  echo "Each benchmark compares what it measured in this run with its goal and prints a \`Goal:\`"
  echo "line; they are gathered here from the sections below."
  echo
  # Every "Goal: WHAT: MEASURED (goal GOAL): **met**" line, as a list item.
  grep '^Goal: ' "$section" | sed 's/^Goal: /- /' || echo "- no benchmark printed a goal line"
  echo
  cat "$section"
  echo
  echo "## Not measured yet"
  echo
  echo "The gateway's LoadData end to end (its time is dominated by IB pacing, which ib-sim"
  echo "scales down in tests), and training on a GPU (no GPU on the benchmark machine)."
} >BENCHMARKS.md
echo "wrote BENCHMARKS.md"

#!/usr/bin/env bash
# The figures in README.md's "Performance" section: one JSON line per configuration.
# Usage: bash benchmarks/run.sh [DATA_DIR] > benchmarks/results-cpu-2core.jsonl
set -euo pipefail
data=${1:-../shared/data/cifar10-sample}
bench() { cifar-ray bench --data-dir "$data" --rounds 3 "$@"; }
bench --image-size 299 --images 320 --shard-size 64
bench --image-size 75 --images 4096
for n in 1000 6000; do
  bench --image-size 75 --images "$n" --actors 2
done

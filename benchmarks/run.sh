#!/usr/bin/env bash
# The figures in README.md's "Performance" section: one JSON line per configuration.
# Usage, from the repository root:
#   bash benchmarks/run.sh [DATA_DIR] > benchmarks/results-cpu-2core.jsonl
set -euo pipefail
data=${1:-../shared/data/cifar10-sample}
full=${FULL_ARCHIVE:-/tmp/cifar-ray-60k.tar.gz}  # 60,000 synthetic images, official format
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # benchmarks.nearfree for the actors
if [ ! -f "$full" ]; then
  python -c "import sys; from pathlib import Path; from tests.cifar_files import batches, write_archive
write_archive(Path(sys.argv[1]), batches(10000))" "$full"
fi
bench() { cifar-ray bench --rounds 3 "$@"; }
# Whole job, start to end, against benchmarks/bare.py: a near-free model (what is left is
# everything around it, as on a GPU), then InceptionV3 on real images.
bench --whole-job --data-dir "$full" --backbone benchmarks.nearfree:factory --image-size 32 \
  --images 60000 --batch-size 256 --shard-size 1024
bench --whole-job --data-dir "$data" --image-size 150 --images 3000
# Your own images: 20,000 JPEGs of 256x256 that the bench writes from the sample, near-free
# model at 224 px (centre crop), against benchmarks/bare_images.py; then peak memory at
# 10,000 and 100,000 images (one timed round each: the memory round is the point).
images() { bench --whole-job --image-files --data-dir "$data" --backbone benchmarks.nearfree:factory \
  --image-size 224 --batch-size 256 --shard-size 1024 "$@"; }
images --images 20000
for n in 10000 100000; do images --images "$n" --rounds 1; done
# Steady state, after the first actor is up, against the model in a plain process.
bench --data-dir "$data" --image-size 299 --images 320 --shard-size 64
bench --data-dir "$data" --image-size 75 --images 4096
for n in 1000 6000; do
  bench --data-dir "$data" --image-size 75 --images "$n" --actors 2
done

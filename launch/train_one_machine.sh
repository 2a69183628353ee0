#!/usr/bin/env bash
# Trains on one machine (CPU, or the first GPU TensorFlow finds), then
# evaluates on every test image and draws a sample grid.
#
#   launch/train_one_machine.sh WORKDIR [extra train flags...]
#
# Example: the README's MNIST run, one hour of training:
#   launch/train_one_machine.sh runs/mnist --dataset=mnist \
#       --likelihood=mixture --max_minutes=60 --num_steps=1000000 \
#       --eval_every=1000 --eval_images=2000
#
# Rerunning with the same WORKDIR resumes the run.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 WORKDIR [train flags...]" >&2
  exit 2
fi
workdir=$1
shift

python -m pixelcnnpp.train --workdir="$workdir" "$@"
python -m pixelcnnpp.evaluate --workdir="$workdir" \
    --output="$workdir/final.json"
python -m pixelcnnpp.sample --workdir="$workdir" --num=64 \
    --out="$workdir/samples.png"

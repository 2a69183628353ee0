#!/usr/bin/env bash
# Trains on every GPU of this machine at once (MirroredStrategy): each GPU
# holds all the weights and takes an equal share of every batch, and the
# step is the one a single device would take with the whole batch.
#
#   launch/train_multi_gpu.sh WORKDIR [extra train flags...]
#
# Runs python -m pixelcnnpp.train --workdir=WORKDIR --strategy=mirrored,
# then your flags. --batch_size is the global batch, a multiple of the
# number of GPUs: scale it with them (16 per GPU is the paper's).
#
# Example, four GPUs, the paper's CIFAR-10 model in mixed precision:
#   launch/train_multi_gpu.sh runs/cifar10 --dataset=cifar10 \
#       --batch_size=64 --num_filters=160 --num_resnet=5 \
#       --num_logistic_mix=10 --dropout_p=0.5 --precision=mixed_float16
#
# CUDA_VISIBLE_DEVICES=0,1 limits it to some GPUs. Rerunning with the same
# WORKDIR resumes the run. Tested here only on CPU devices (no GPU at hand):
# tests/test_distributed.py mirrors two logical CPUs.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 WORKDIR [train flags...]" >&2
  exit 2
fi
workdir=$1
shift

exec python -m pixelcnnpp.train --workdir="$workdir" --strategy=mirrored \
    "$@"

#!/usr/bin/env bash
# Trains on a Cloud TPU (TPUStrategy): every TPU core holds all the
# weights and takes an equal share of each batch.
#
#   launch/train_tpu.sh WORKDIR [extra train flags...]
#
# Runs python -m pixelcnnpp.train --workdir=WORKDIR --strategy=tpu
# --precision=mixed_bfloat16 [--tpu=$TPU_NAME], then your flags, which
# win over these (--precision=float32 to compute in float32).
#
# On a TPU VM leave TPU_NAME unset: the VM's own TPU is used. From a VM
# driving a TPU node, set TPU_NAME to the node's name (or its
# grpc://address), and keep WORKDIR and the data on Cloud Storage
# (gs://...), which is what the TPU reads and writes.
#
# Example, a v3-8 (8 cores), CIFAR-10 from TFDS:
#   launch/train_tpu.sh gs://my-bucket/runs/cifar10 --dataset=cifar10 \
#       --data_dir=gs://my-bucket/tensorflow_datasets --batch_size=128 \
#       --num_filters=160 --num_resnet=5 --num_logistic_mix=10 \
#       --dropout_p=0.5
#
# Note: written from the TensorFlow TPU documentation and checked only as
# far as its flags go: no TPU was at hand to run it on.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: [TPU_NAME=name] $0 WORKDIR [train flags...]" >&2
  exit 2
fi
workdir=$1
shift
tpu_flags=()
if [ -n "${TPU_NAME:-}" ]; then
  tpu_flags=(--tpu="$TPU_NAME")
fi

exec python -m pixelcnnpp.train --workdir="$workdir" --strategy=tpu \
    --precision=mixed_bfloat16 ${tpu_flags[@]+"${tpu_flags[@]}"} "$@"

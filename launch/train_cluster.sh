#!/usr/bin/env bash
# Trains on several machines at once (MultiWorkerMirroredStrategy). Run
# it once on every machine, with the same WORKDIR and flags everywhere and
# the TF_CONFIG environment variable telling each machine the cluster and
# its own place in it. With two machines:
#
#   # on 10.0.0.1, the chief: it writes the run's files
#   export TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:2222",
#       "10.0.0.2:2222"]}, "task": {"type": "worker", "index": 0}}'
#   launch/train_cluster.sh /shared/runs/cifar10 [extra train flags...]
#
#   # on 10.0.0.2: the same cluster, "index": 1
#   export TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:2222",
#       "10.0.0.2:2222"]}, "task": {"type": "worker", "index": 1}}'
#   launch/train_cluster.sh /shared/runs/cifar10 [extra train flags...]
#
# Runs python -m pixelcnnpp.train --workdir=WORKDIR
# --strategy=multi_worker, then your flags. Each machine trains with all
# its GPUs (or its CPU); --batch_size is the global batch over all of them
# and must be a multiple of their number.
#
# Needs: the package and the data on every machine; the listed ports open
# between the machines; WORKDIR on storage that every machine reaches at
# the same path (an NFS mount, or gs://bucket/run), since every worker
# resumes from the chief's checkpoints. Start the machines within a few
# minutes of each other: each waits for the others. If one stops, stop
# them all and run the same commands again: they resume from the last
# checkpoint. SIGTERM to any worker makes them all save and stop.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: TF_CONFIG=... $0 WORKDIR [train flags...]" >&2
  exit 2
fi
if [ -z "${TF_CONFIG:-}" ]; then
  echo "$0: set TF_CONFIG on this machine first; the top of this" \
       "script shows how" >&2
  exit 2
fi
workdir=$1
shift

exec python -m pixelcnnpp.train --workdir="$workdir" \
    --strategy=multi_worker "$@"

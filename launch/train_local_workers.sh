#!/usr/bin/env bash
# Starts N training workers on this machine, one process each, that train
# together as a cluster of N machines would (MultiWorkerMirroredStrategy
# over loopback ports): a way to try the multi-machine setup of
# train_cluster.sh without a cluster. It is not faster than one process.
#
#   launch/train_local_workers.sh N WORKDIR [extra train flags...]
#
# Picks N free ports, gives worker i the TF_CONFIG
#   {"cluster": {"worker": ["localhost:P0", ..., "localhost:PN-1"]},
#    "task": {"type": "worker", "index": i}}
# and runs python -m pixelcnnpp.train --workdir=WORKDIR
# --strategy=multi_worker, then your flags, in each. Worker 0 is the chief:
# it writes the run's files and logs to this terminal; the others log to
# WORKDIR/logs/worker-i.log. --batch_size is the global batch, a multiple
# of N.
#
# Waits for all of them. Ctrl-C stops them all (each saves a checkpoint
# first; a second Ctrl-C kills them at once); if one fails, the others are
# killed. Rerunning with the same N and WORKDIR resumes the run.
set -euo pipefail
if [ $# -lt 2 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 NUM_WORKERS WORKDIR [train flags...]" >&2
  exit 2
fi
num_workers=$1
workdir=$2
shift 2
mkdir -p "$workdir/logs"

# Free ports from the kernel: bind port 0, read the number, let go.
ports=$(python - "$num_workers" <<'PYTHON'
import socket
import sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
  s.bind(("localhost", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PYTHON
)
workers=$(printf '"localhost:%s", ' $ports)
workers=${workers%, }

pids=()
kill_all() {
  kill -KILL "${pids[@]}" 2>/dev/null || true
}
stop_all() {
  echo "$0: stopping the workers; they save a checkpoint first" >&2
  trap 'kill_all; exit 130' INT TERM
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait || true
  exit 130
}

for ((i = 0; i < num_workers; i++)); do
  config="{\"cluster\": {\"worker\": [$workers]},"
  config+=" \"task\": {\"type\": \"worker\", \"index\": $i}}"
  if [ "$i" -eq 0 ]; then
    TF_CONFIG=$config python -m pixelcnnpp.train --workdir="$workdir" \
        --strategy=multi_worker "$@" &
  else
    TF_CONFIG=$config python -m pixelcnnpp.train --workdir="$workdir" \
        --strategy=multi_worker "$@" > "$workdir/logs/worker-$i.log" 2>&1 &
  fi
  pids+=($!)
done
trap stop_all INT TERM

for ((i = 0; i < num_workers; i++)); do
  if ! wait -n; then
    echo "$0: a worker failed (see $workdir/logs/); stopping the rest" >&2
    kill_all
    exit 1
  fi
done

"""Plots test bits/dim against training time for one or more runs.

  python benchmarks/plot_training.py --out=docs/mnist_bits_per_dim.png \
      runs/mnist_mixture:mixture runs/mnist_softmax:softmax

Reads each work directory's metrics.jsonl (one line per evaluation during
training) and, when present, final.json written by
`python -m pixelcnnpp.evaluate --output=WORKDIR/final.json`, which is
drawn as a marker at the run's last training time. Needs matplotlib (the
`plot` extra).
"""

import json
import os

from absl import app
from absl import flags
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_string("out", "bits_per_dim.png", "PNG file to write.")
flags.DEFINE_float("target", None, "Draw a horizontal line at this value.")

FLAGS = flags.FLAGS


def read_run(workdir):
  """(minutes, test bits/dim, test images) per evaluation, and the final
  evaluation dict or None."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  final = None
  final_path = os.path.join(workdir, "final.json")
  if os.path.exists(final_path):
    with open(final_path) as f:
      final = json.load(f)
  return rows, final


def main(argv):
  runs = argv[1:]
  if not runs:
    raise app.UsageError("name one or more runs as WORKDIR[:LABEL]")
  figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
  for run in runs:
    workdir, _, label = run.partition(":")
    rows, final = read_run(workdir)
    minutes = [row["train_seconds"] / 60 for row in rows]
    bits = [row["test_bits_per_dim"] for row in rows]
    line, = axes.plot(minutes, bits, marker=".",
                      label=f"{label or workdir} (test subset of "
                      f"{rows[-1]['test_images']} images)")
    if final:
      axes.plot([minutes[-1]], [final["bits_per_dim"]], marker="*",
                markersize=12, color=line.get_color(), linestyle="none",
                label=f"{label or workdir}: all {final['count']} test "
                f"images, {final['bits_per_dim']:.3f}")
  if FLAGS.target:
    axes.axhline(FLAGS.target, color="grey", linestyle="--", linewidth=1,
                 label=f"target {FLAGS.target}")
  axes.set_xlabel("training time (minutes, evaluation excluded)")
  axes.set_ylabel("test bits/dim (averaged weights)")
  axes.set_title("MNIST, 2 CPU cores")
  axes.grid(alpha=0.3)
  axes.legend(fontsize=8)
  figure.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  figure.savefig(FLAGS.out)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)

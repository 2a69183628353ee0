"""Trains each model and head on MNIST for the same time, then compares.

  python benchmarks/model_family.py --minutes=4 --out=runs/family

For every architecture (pixelcnn, gated, pixelcnnpp) and head (softmax,
mixture): the command-line defaults, `--minutes` of training on one
process, then bits/dim of the averaged weights on every test image. Prints
a Markdown table (parameters, training images/s, test bits/dim) and leaves
each run's work directory, with its last sample grid, under --out.
"""

import json
import os
import shutil

from absl import app
from absl import flags
import numpy as np

from pixelcnnpp import data
from pixelcnnpp import evaluation
from pixelcnnpp import training

flags.DEFINE_float("minutes", 4.0, "Training time of each run.")
flags.DEFINE_string("out", "runs/family", "Directory for the runs.")
flags.DEFINE_string("data_dir", None, "MNIST IDX files; default: the "
                    "usual places.")
flags.DEFINE_list("models", ["pixelcnn", "gated", "pixelcnnpp"],
                  "Architectures to compare.")
flags.DEFINE_list("likelihoods", ["softmax", "mixture"], "Heads to compare.")

FLAGS = flags.FLAGS

# The command line's default depth per architecture.
_DEPTH = {"pixelcnnpp": 1, "pixelcnn": 8, "gated": 8}


def run(model, likelihood, test):
  """Trains one configuration; returns its row of the table."""
  workdir = os.path.join(FLAGS.out, f"{model}_{likelihood}")
  shutil.rmtree(workdir, ignore_errors=True)
  model_config = {"model": model, "likelihood": likelihood,
                  "num_filters": 32, "num_resnet": _DEPTH[model],
                  "num_hierarchies": 3, "num_logistic_mix": 5,
                  "dropout_p": 0.1, "channel_coupling": False}
  data_config = {"name": "mnist", "data_dir": FLAGS.data_dir,
                 "image_size": None, "grayscale": False,
                 "conditional": False}
  config = training.TrainConfig(max_minutes=FLAGS.minutes,
                                num_steps=10 ** 9, eval_every=10 ** 9,
                                eval_images=500, checkpoint_every=10 ** 9)
  training.train(workdir, data_config, model_config, config)

  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    metrics = [json.loads(line) for line in f][-1]
  model_, _ = training.restore(workdir)
  result = evaluation.evaluate(model_, test)
  parameters = sum(int(np.prod(v.shape)) for v in model_.trainable_variables)
  return {"model": model, "likelihood": likelihood,
          "parameters": parameters, "steps": metrics["step"],
          "images_per_second": metrics["step"] * config.batch_size
                               / metrics["train_seconds"],
          "bits_per_dim": result["bits_per_dim"],
          "stderr": result["stderr"], "count": result["count"]}


def main(argv):
  del argv
  test = data.load("mnist", data_dir=FLAGS.data_dir).test
  rows = [run(model, likelihood, test) for model in FLAGS.models
          for likelihood in FLAGS.likelihoods]
  print(f"\nEach run: {FLAGS.minutes:g} minutes of training, batch 16, "
        f"then every MNIST test image.\n")
  print("| model | head | parameters | steps | train images/s | "
        "test bits/dim |")
  print("|---|---|---:|---:|---:|---:|")
  for row in rows:
    print(f"| {row['model']} | {row['likelihood']} | {row['parameters']:,} "
          f"| {row['steps']} | {row['images_per_second']:.0f} | "
          f"{row['bits_per_dim']:.3f} +- {row['stderr']:.3f} |")
  with open(os.path.join(FLAGS.out, "results.json"), "w") as f:
    json.dump(rows, f, indent=2)


if __name__ == "__main__":
  app.run(main)

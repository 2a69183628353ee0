"""Bits per dimension of a trained model.

  python -m pixelcnnpp.evaluate --workdir=DIR [--split=test]
  python -m pixelcnnpp.evaluate --workdir=DIR --images=folder_or.npz

Loads the run's latest checkpoint (Polyak-averaged weights unless
--noaveraged) and reports mean bits/dim with its standard error over
images, counting every image of the split.
"""

import json
import sys

from absl import app
from absl import flags
from absl import logging

from pixelcnnpp import data
from pixelcnnpp import evaluation
from pixelcnnpp import models
from pixelcnnpp import training

flags.DEFINE_string("workdir", None, "Work directory of a training run.")
flags.DEFINE_enum("split", "test", ["test", "train"],
                  "Split of the run's data set to score.")
flags.DEFINE_string("images", None,
                    "Score these images instead: a directory of PNG/JPEG "
                    "files or an .npz, of the model's image size.")
flags.DEFINE_string("data_dir", None,
                    "Override the run's data directory (same data set).")
flags.DEFINE_bool("averaged", True,
                  "Use the Polyak-averaged weights (as reported while "
                  "training); --noaveraged for the raw weights.")
flags.DEFINE_integer("batch_size", 250, "Images per forward pass.")
flags.DEFINE_string("output", None,
                    "Also write the result as JSON to this file.")

FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required: a training run's directory")
  try:
    model, config = training.restore(FLAGS.workdir, FLAGS.averaged)
    if FLAGS.images:
      images = data.load_images(FLAGS.images)
      result = evaluation.evaluate_images(model, images, FLAGS.batch_size)
      what = FLAGS.images
    else:
      data_config = dict(config["data"])
      conditional = data_config.pop("conditional")
      if FLAGS.data_dir:
        data_config["data_dir"] = FLAGS.data_dir
      dataset = data.load(**data_config)
      split = dataset.test if FLAGS.split == "test" else dataset.train
      result = evaluation.evaluate(model, split, FLAGS.batch_size,
                                   conditional=conditional)
      what = f"{dataset.source}, {FLAGS.split} split"
  except (FileNotFoundError, data.DataSourceError, models.ImageError,
          ValueError) as e:
    logging.error("%s", e)
    sys.exit(1)

  logging.info("%s: %.4f bits/dim (+-%.4f standard error) over %d images",
               what, result["bits_per_dim"], result["stderr"],
               result["count"])
  print(f"bits_per_dim {result['bits_per_dim']:.5f} stderr "
        f"{result['stderr']:.5f} images {result['count']}")
  if FLAGS.output:
    summary = {key: value for key, value in result.items()
               if key != "per_image"}
    with open(FLAGS.output, "w") as f:
      json.dump(dict(summary, scored=what), f, indent=2)


if __name__ == "__main__":
  app.run(main)

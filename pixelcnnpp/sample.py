"""Draws images from a trained model into a PNG grid.

  python -m pixelcnnpp.sample --workdir=DIR --num=64 --out=samples.png

With --complete=images.npz (or a folder of images) the top rows of those
images are kept and the rest drawn (--keep_rows).
"""

import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from pixelcnnpp import data
from pixelcnnpp import image_grid
from pixelcnnpp import models
from pixelcnnpp import sampling
from pixelcnnpp import training

flags.DEFINE_string("workdir", None, "Work directory of a training run.")
flags.DEFINE_integer("num", 64, "Number of images.")
flags.DEFINE_string("out", "samples.png", "PNG file for the grid.")
flags.DEFINE_string("npz", None,
                    "Also save the raw images (uint8 [N, H, W, C]) here.")
flags.DEFINE_integer("seed", 0, "Sampling seed; the same seed gives the "
                     "same images.")
flags.DEFINE_float("temperature", 1.0,
                   "Below 1 sharper, above 1 more varied; 1 is the model.")
flags.DEFINE_enum("method", "fast", list(sampling.METHODS),
                  "fast (cached, row by row) or reference (a full network "
                  "pass per pixel).")
flags.DEFINE_list("labels", None,
                  "Class labels for a conditional model: one per image, "
                  "or one for all. Default: 0, 1, 2, ... in turn.")
flags.DEFINE_string("complete", None,
                    "Images to complete (folder or .npz): their top "
                    "--keep_rows rows are kept.")
flags.DEFINE_integer("keep_rows", None,
                     "Rows kept with --complete; default half the height.")
flags.DEFINE_bool("averaged", True, "Use the Polyak-averaged weights.")

FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required: a training run's directory")
  try:
    model, _ = training.restore(FLAGS.workdir, FLAGS.averaged)
    height, width, _ = model.image_shape
    labels = None
    if model.num_classes:
      labels = np.arange(FLAGS.num) % model.num_classes
      if FLAGS.labels:
        labels = np.resize(np.array(FLAGS.labels, np.int32), FLAGS.num)
    prefix, prefix_length = None, None
    if FLAGS.complete:
      prefix = data.load_images(FLAGS.complete)[:FLAGS.num]
      keep = height // 2 if FLAGS.keep_rows is None else FLAGS.keep_rows
      prefix_length = keep * width
      if len(prefix) < FLAGS.num:
        raise ValueError(f"{FLAGS.complete} holds {len(prefix)} images, "
                         f"fewer than --num={FLAGS.num}")

    start = time.time()
    images = model.sample(FLAGS.num, seed=FLAGS.seed,
                          temperature=FLAGS.temperature, labels=labels,
                          prefix=prefix, prefix_length=prefix_length,
                          method=FLAGS.method).numpy()
  except (FileNotFoundError, data.DataSourceError, models.ImageError,
          ValueError) as e:
    logging.error("%s", e)
    sys.exit(1)
  logging.info("Drew %d images in %.1f s", FLAGS.num, time.time() - start)

  image_grid.save(images, FLAGS.out)
  logging.info("Wrote %s", FLAGS.out)
  if FLAGS.npz:
    np.savez_compressed(FLAGS.npz, images=images.astype(np.uint8))
    logging.info("Wrote %s", FLAGS.npz)


if __name__ == "__main__":
  app.run(main)

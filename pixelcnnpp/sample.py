"""Draws images from a trained model into a PNG grid.

  python -m pixelcnnpp.sample --workdir=DIR --num=64 --out=samples.png

With --complete=images.npz (or a folder of images) the top rows of those
images are kept and the rest drawn (--keep_rows). The images are read
with the run's image size and colour settings, as for evaluate --images.
"""

import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from pixelcnnpp import evaluation
from pixelcnnpp import image_grid
from pixelcnnpp import sampling

flags.DEFINE_string("workdir", None, "Work directory of a training run "
                    "(required).")
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
                    "--keep_rows rows are kept. They are read as the run "
                    "read its data: cropped and resized to its image size, "
                    "and in grayscale if the model is.")
flags.DEFINE_bool("skip_bad_files", False,
                  "With --complete: leave out, with a warning, files that "
                  "cannot be decoded.")
flags.DEFINE_integer("keep_rows", None,
                     "Rows kept with --complete; default half the height.")
flags.DEFINE_bool("averaged", True, "Use the Polyak-averaged weights.")

FLAGS = flags.FLAGS


def _draw(model, config):
  """Draws the images the flags ask for: int32 [num, H, W, C]."""
  height, width, _ = model.image_shape
  labels = evaluation.labels_from_flag(FLAGS.labels, model, FLAGS.num,
                                       default_cycle=True)
  prefix, prefix_length = None, None
  if FLAGS.complete:
    prefix = evaluation.load_images_as_trained(
        FLAGS.complete, model, config["data"],
        skip_bad_files=FLAGS.skip_bad_files)[:FLAGS.num]
    keep = height // 2 if FLAGS.keep_rows is None else FLAGS.keep_rows
    prefix_length = keep * width
    if len(prefix) < FLAGS.num:
      raise ValueError(f"{FLAGS.complete} holds {len(prefix)} images, "
                       f"fewer than --num={FLAGS.num}")

  start = time.time()
  with _RowProgress(height) as progress:
    images = model.sample(FLAGS.num, seed=FLAGS.seed,
                          temperature=FLAGS.temperature, labels=labels,
                          prefix=prefix, prefix_length=prefix_length,
                          method=FLAGS.method, progress=progress).numpy()
  logging.info("Drew %d images in %.1f s", FLAGS.num, time.time() - start)
  return images


class _RowProgress:
  """Rows drawn so far: a bar on a terminal, else a log line per row."""

  def __init__(self, height):
    self.height = height
    self.bar = None
    if sys.stderr.isatty():
      import tqdm  # pylint: disable=g-import-not-at-top
      self.bar = tqdm.tqdm(total=height, unit="row", dynamic_ncols=True)

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    if self.bar is not None:
      self.bar.close()

  def __call__(self, rows):
    if self.bar is not None:
      self.bar.update(rows - self.bar.n)
    else:
      logging.info("Row %d of %d drawn", rows, self.height)


def main(argv):
  images = evaluation.run_with_restored_model(argv, FLAGS.workdir,
                                              FLAGS.averaged, _draw)

  image_grid.save(images, FLAGS.out)
  logging.info("Wrote %s", FLAGS.out)
  if FLAGS.npz:
    np.savez_compressed(FLAGS.npz, images=images.astype(np.uint8))
    logging.info("Wrote %s", FLAGS.npz)


if __name__ == "__main__":
  app.run(main)

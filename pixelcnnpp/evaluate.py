"""Bits per dimension of a trained model.

  python -m pixelcnnpp.evaluate --workdir=DIR [--split=test]
  python -m pixelcnnpp.evaluate --workdir=DIR --images=folder_or.npz

Loads the run's latest checkpoint (Polyak-averaged weights unless
--noaveraged) and reports mean bits/dim with its standard error over
images, counting every image of the split. --images are read with the
run's image size and colour settings, so that any folder of photographs
can be scored.
"""

import json

from absl import app
from absl import flags
from absl import logging

from pixelcnnpp import data
from pixelcnnpp import evaluation

flags.DEFINE_string("workdir", None, "Work directory of a training run "
                    "(required).")
flags.DEFINE_enum("split", "test", ["test", "train"],
                  "Split of the run's data set to score.")
flags.DEFINE_string("images", None,
                    "Score these images instead: a directory of PNG/JPEG "
                    "files or an .npz. They are read as the run read its "
                    "data: cropped and resized to its image size, and in "
                    "grayscale if the model is.")
flags.DEFINE_bool("skip_bad_files", False,
                  "With --images: leave out, with a warning, files that "
                  "cannot be decoded. (The run's own data follow its "
                  "setting.)")
flags.DEFINE_list("labels", None,
                  "With --images and a class-conditional model: the class "
                  "of every image, as one integer for all of them or one "
                  "per image in the order they are read (sorted by "
                  "path).")
flags.DEFINE_string("data_dir", None,
                    "Override the run's data directory (same data set).")
flags.DEFINE_bool("averaged", True,
                  "Use the Polyak-averaged weights (as reported while "
                  "training); --noaveraged for the raw weights.")
flags.DEFINE_integer("batch_size", 250, "Images per forward pass.")
flags.DEFINE_string("output", None,
                    "Also write the result as JSON to this file.")

FLAGS = flags.FLAGS


# Batches between progress lines.
_LOG_EVERY = 8


def _score(model, config):
  """Scores --images or a split of the run's data: (result, what)."""
  if FLAGS.images:
    images = evaluation.load_images_as_trained(
        FLAGS.images, model, config["data"],
        skip_bad_files=FLAGS.skip_bad_files)
    labels = evaluation.labels_from_flag(FLAGS.labels, model, len(images))
    result = evaluation.evaluate_images(model, images, FLAGS.batch_size,
                                        labels=labels,
                                        log_every=_LOG_EVERY)
    return result, FLAGS.images

  data_config = dict(config["data"])
  conditional = data_config.pop("conditional")
  if FLAGS.data_dir:
    data_config["data_dir"] = FLAGS.data_dir
  dataset = data.load(**data_config)
  split = dataset.test if FLAGS.split == "test" else dataset.train
  result = evaluation.evaluate(model, split, FLAGS.batch_size,
                               conditional=conditional,
                               log_every=_LOG_EVERY)
  return result, f"{dataset.source}, {FLAGS.split} split"


def main(argv):
  result, what = evaluation.run_with_restored_model(
      argv, FLAGS.workdir, FLAGS.averaged, _score)

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

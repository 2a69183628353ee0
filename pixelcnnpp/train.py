"""Trains a model: python -m pixelcnnpp.train --dataset=mnist --workdir=DIR.

A rerun with the same --workdir resumes from its latest checkpoint. The
defaults are a small model that shows progress within minutes on two CPU
cores; the paper's CIFAR-10 configuration is

  --num_filters=160 --num_resnet=5 --num_hierarchies=3
  --num_logistic_mix=10 --dropout_p=0.5 --batch_size=16
  --learning_rate=1e-3 --lr_decay=0.999995

--strategy spreads training over the GPUs of a machine, several machines
or a TPU (the scripts in launch/ show how); --precision=mixed_bfloat16 or
mixed_float16 computes the network in 16 bits.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from pixelcnnpp import data
from pixelcnnpp import likelihoods
from pixelcnnpp import models
from pixelcnnpp import training

_DEFAULTS = training.TrainConfig()

flags.DEFINE_string("workdir", None,
                    "Directory for checkpoints, config.json, TensorBoard "
                    "logs and sample grids; rerun with it to resume "
                    "(required).")
flags.DEFINE_string("dataset", "mnist",
                    "mnist, fashion_mnist, cifar10, any TFDS image data "
                    "set, or a directory of PNG/JPEG images (per-class "
                    "subdirectories become labels).")
flags.DEFINE_string("data_dir", None,
                    "Where the data set's files are: the four IDX files "
                    "for MNIST-like sets, or a prepared TFDS data "
                    "directory. Default: the usual places.")
flags.DEFINE_integer("image_size", None,
                     "Resize (and centre-crop) images to this square size.")
flags.DEFINE_bool("grayscale", False,
                  "Convert colour images to one channel.")
flags.DEFINE_bool("skip_bad_files", False,
                  "For a folder of images: warn about each file that "
                  "cannot be decoded and train without it, rather than "
                  "stop.")
flags.DEFINE_bool("conditional", False,
                  "Condition the model on the data set's class labels.")
flags.DEFINE_enum("model", "pixelcnnpp", list(models.MODELS),
                  "Architecture.")
flags.DEFINE_enum("likelihood", "mixture", list(likelihoods.HEADS),
                  "Discretized logistic mixture or 256-way softmax.")
flags.DEFINE_integer("num_filters", 32, "Channels of every hidden layer.")
flags.DEFINE_integer("num_resnet", None,
                     "Depth: gated residual blocks per resolution stage "
                     "for pixelcnnpp (default 1); residual or gated layers "
                     "after the first for pixelcnn and gated (default 8).")
flags.DEFINE_integer("num_hierarchies", 3,
                     "Resolution stages of the U-Net (each halves H, W).")
flags.DEFINE_integer("num_logistic_mix", 5,
                     "Mixture components per sub-pixel (mixture head).")
flags.DEFINE_float("dropout_p", 0.1,
                   "Dropout rate inside the blocks (the paper: 0.5, for "
                   "long runs of large models).")
flags.DEFINE_bool("channel_coupling", False,
                  "The PixelCNN++ paper's colour model (mixture head, "
                  "colour data): one mixture component per pixel shared "
                  "by its channels, each channel's means shifted by "
                  "coefficients times the channels before it. Default: "
                  "each channel its own mixture, predicted in parallel.")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size,
                     "Images per step, over all replicas together (the "
                     "global batch); must be a multiple of the number of "
                     "replicas.")
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate,
                   "Adam's learning rate at step 0.")
flags.DEFINE_float("lr_decay", _DEFAULTS.lr_decay,
                   "Learning-rate factor applied every step.")
flags.DEFINE_float("beta_1", _DEFAULTS.beta_1, "Adam's beta_1.")
flags.DEFINE_float("beta_2", _DEFAULTS.beta_2, "Adam's beta_2.")
flags.DEFINE_float("polyak_decay", _DEFAULTS.polyak_decay,
                   "Decay of the weight average used for evaluation and "
                   "sampling.")
flags.DEFINE_integer("num_steps", _DEFAULTS.num_steps,
                     "Total training steps.")
flags.DEFINE_float("max_minutes", _DEFAULTS.max_minutes,
                   "Stop after this many minutes of training (evaluation "
                   "not counted), with a checkpoint; 0 for no limit.")
flags.DEFINE_integer("num_epochs", None,
                     "Total epochs; overrides --num_steps when given.")
flags.DEFINE_integer("init_batch_size", _DEFAULTS.init_batch_size,
                     "Images for data-dependent initialisation.")
flags.DEFINE_integer("eval_every", _DEFAULTS.eval_every,
                     "Steps between evaluations and sample grids.")
flags.DEFINE_integer("eval_images", _DEFAULTS.eval_images,
                     "Test images per evaluation during training; 0 for "
                     "the whole test split.")
flags.DEFINE_integer("checkpoint_every", _DEFAULTS.checkpoint_every,
                     "Steps between checkpoints.")
flags.DEFINE_integer("num_samples", _DEFAULTS.num_samples,
                     "Images in each sample grid; 0 for none.")
flags.DEFINE_integer("seed", _DEFAULTS.seed,
                     "Seed of initialisation, data order and dropout.")
flags.DEFINE_enum("strategy", "default", list(training.STRATEGIES),
                  "How to spread training: default (one device, the first "
                  "GPU or else the CPU); mirrored (every GPU of this "
                  "machine); multi_worker (several processes or machines, "
                  "each with all its GPUs or its CPU, listed in the "
                  "TF_CONFIG environment variable; run once on each); tpu "
                  "(a Cloud TPU, see --tpu). All are synchronous: a step "
                  "is the step one device would take with the whole batch.")
flags.DEFINE_string("tpu", None,
                    "With --strategy=tpu: the TPU's name or grpc:// "
                    "address; leave unset on a TPU VM for its own TPU.")
flags.DEFINE_enum("precision", _DEFAULTS.precision,
                  list(training.PRECISIONS),
                  "Keras mixed-precision policy of the trained network: "
                  "float32, or mixed_bfloat16 (TPUs, recent GPUs) or "
                  "mixed_float16 (GPUs, with loss scaling), which compute "
                  "in 16 bits and keep the variables, the likelihood and "
                  "the averaged weights in float32.")

FLAGS = flags.FLAGS

_DEFAULT_DEPTH = {"pixelcnnpp": 1, "pixelcnn": 8, "gated": 8}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required: where to keep the run")
  if FLAGS.tpu and FLAGS.strategy != "tpu":
    raise app.UsageError("--tpu is for --strategy=tpu")
  # First, before TensorFlow runs anything: a multi-worker strategy can
  # only start its server then.
  try:
    strategy = training.make_strategy(FLAGS.strategy, FLAGS.tpu)
  except training.TrainingError as e:
    logging.error("%s", e)
    sys.exit(1)

  data_config = {"name": FLAGS.dataset, "data_dir": FLAGS.data_dir,
                 "image_size": FLAGS.image_size,
                 "grayscale": FLAGS.grayscale,
                 "conditional": FLAGS.conditional}
  # Recorded only when set, so that runs saved before the flag existed
  # still resume: config.json must match key by key.
  if FLAGS.skip_bad_files:
    data_config["skip_bad_files"] = True
  num_resnet = FLAGS.num_resnet
  if num_resnet is None:
    num_resnet = _DEFAULT_DEPTH[FLAGS.model]
  model_config = {"model": FLAGS.model, "likelihood": FLAGS.likelihood,
                  "num_filters": FLAGS.num_filters,
                  "num_resnet": num_resnet,
                  "num_hierarchies": FLAGS.num_hierarchies,
                  "num_logistic_mix": FLAGS.num_logistic_mix,
                  "dropout_p": FLAGS.dropout_p,
                  "channel_coupling": FLAGS.channel_coupling}
  try:
    if FLAGS.num_epochs is not None and FLAGS.num_epochs < 1:
      raise ValueError(f"num_epochs must be at least 1, not "
                       f"{FLAGS.num_epochs}")
    train_config = _train_config()
  except ValueError as e:
    logging.error("--%s", e)
    sys.exit(1)
  logging.info("Configuration: data %s, model %s, training %s, strategy "
               "%s", data_config, model_config, train_config,
               FLAGS.strategy)

  try:
    result = training.train(FLAGS.workdir, data_config, model_config,
                            train_config, num_epochs=FLAGS.num_epochs,
                            strategy=strategy)
  except (data.DataSourceError, training.TrainingError, ValueError) as e:
    logging.error("%s", e)
    sys.exit(1)
  logging.info("Finished: %s", result)


def _train_config():
  """The TrainConfig of the flags; ValueError names a bad one."""
  return training.TrainConfig(
      batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
      lr_decay=FLAGS.lr_decay, beta_1=FLAGS.beta_1, beta_2=FLAGS.beta_2,
      polyak_decay=FLAGS.polyak_decay, num_steps=FLAGS.num_steps,
      max_minutes=FLAGS.max_minutes,
      init_batch_size=FLAGS.init_batch_size, eval_every=FLAGS.eval_every,
      eval_images=FLAGS.eval_images,
      checkpoint_every=FLAGS.checkpoint_every,
      num_samples=FLAGS.num_samples, seed=FLAGS.seed,
      precision=FLAGS.precision)


if __name__ == "__main__":
  app.run(main)

"""Training: Adam with per-step decay, Polyak averaging, resumable runs.

`Trainer` holds everything a run needs to continue exactly where it
stopped: the model, its Polyak (exponential moving) average as a second
model, the optimizer (whose step counter also sets the learning rate), and
the dropout generator's state inside the model. `train` is the loop behind
`python -m pixelcnnpp.train`: it logs, evaluates, draws sample grids and
keeps checkpoints in a work directory.
"""

import dataclasses
import json
import math
import os
import signal
import sys
import time

from absl import logging
import numpy as np
import tensorflow as tf

from pixelcnnpp import data as data_lib
from pixelcnnpp import evaluation
from pixelcnnpp import image_grid
from pixelcnnpp import models


class TrainingError(RuntimeError):
  """A run that cannot go on (NaN loss, a work directory that clashes)."""


@dataclasses.dataclass
class TrainConfig:
  """How to train.

  Attributes:
    batch_size: images per step.
    learning_rate: Adam's learning rate at step 0.
    lr_decay: the learning rate is multiplied by this every step.
    beta_1, beta_2: Adam's moment decays.
    polyak_decay: decay of the weight average used for evaluation and
      sampling; early on min(polyak_decay, (1 + t) / (10 + t)) at step t,
      so that the average follows the first steps closely.
    num_steps: total steps of the run (a resumed run counts from 0).
    max_minutes: stop after this many minutes of training in this
      invocation (evaluation not counted), saving a checkpoint; 0 for no
      limit.
    init_batch_size: images for data-dependent initialisation.
    eval_every: steps between evaluations (and sample grids).
    eval_images: test images per evaluation during training; 0 for all.
    checkpoint_every: steps between checkpoints.
    num_samples: images in each sample grid; 0 for none.
    seed: seeds initialisation, data order and dropout.
  """

  batch_size: int = 16
  learning_rate: float = 1e-3
  lr_decay: float = 0.99995
  beta_1: float = 0.95
  beta_2: float = 0.9995
  polyak_decay: float = 0.9995
  num_steps: int = 10000
  max_minutes: float = 0.0
  init_batch_size: int = 256
  eval_every: int = 500
  eval_images: int = 0
  checkpoint_every: int = 500
  num_samples: int = 16
  seed: int = 0


class Trainer(tf.Module):
  """Model, averaged model and optimizer, saved and restored together.

  Args:
    model_config: keyword arguments of `models.build`.
    train_config: a `TrainConfig`.
  """

  def __init__(self, model_config, train_config):
    super().__init__()
    self.config = train_config
    self.model = models.build(seed=train_config.seed, **model_config)
    self.ema_model = models.build(seed=train_config.seed, **model_config)
    schedule = tf.keras.optimizers.schedules.ExponentialDecay(
        train_config.learning_rate, decay_steps=1,
        decay_rate=train_config.lr_decay)
    self.optimizer = tf.keras.optimizers.Adam(
        schedule, beta_1=train_config.beta_1, beta_2=train_config.beta_2)
    self.optimizer.build(self.model.trainable_variables)
    self.checkpoint = tf.train.Checkpoint(
        model=self.model, ema_model=self.ema_model,
        optimizer=self.optimizer)
    self._train_step = tf.function(self._step, reduce_retracing=True)

  @property
  def step(self):
    return int(self.optimizer.iterations.numpy())

  def learning_rate(self):
    return float(self.optimizer.learning_rate.numpy())

  def initialize(self, images, labels=None):
    """Data-dependent initialisation; the average starts as a copy."""
    self.model.initialize(images, labels)
    for average, variable in zip(self.ema_model.trainable_variables,
                                 self.model.trainable_variables):
      average.assign(variable)

  def train_step(self, images, labels=None):
    """One Adam step on a batch; returns its mean bits/dim (float)."""
    return self._train_step(images, labels)

  def _step(self, images, labels):
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      bits = tf.reduce_mean(
          self.model.bits_per_dim(images, labels, training=True))
    gradients = tape.gradient(bits, variables)
    self.optimizer.apply_gradients(zip(gradients, variables))

    steps = tf.cast(self.optimizer.iterations, tf.float32)
    decay = tf.minimum(self.config.polyak_decay, (1 + steps) / (10 + steps))
    for average, variable in zip(self.ema_model.trainable_variables,
                                 variables):
      decay_v = tf.cast(decay, variable.dtype)
      average.assign(decay_v * average + (1 - decay_v) * variable)
    return bits


def training_batches(dataset, batch_size, seed, start_step, num_examples):
  """Endless batches in a fixed order, starting at batch `start_step`.

  Epoch e is shuffled with seed (seed, e) and cut into full batches, so a
  resumed run sees exactly the batches an uninterrupted one would.

  Yields:
    (images uint8 [batch_size, H, W, C], labels int32 [batch_size]).
  """
  steps_per_epoch = num_examples // batch_size
  if steps_per_epoch == 0:
    raise TrainingError(f"batch_size {batch_size} is larger than the "
                        f"{num_examples} training images")
  epoch, skip = divmod(start_step, steps_per_epoch)
  while True:
    epoch_batches = (
        dataset.shuffle(num_examples, seed=seed * 100003 + epoch,
                        reshuffle_each_iteration=False)
        .batch(batch_size, drop_remainder=True)
        .skip(skip)
        .prefetch(tf.data.AUTOTUNE))
    for element in epoch_batches:
      yield element["image"], element["label"]
    epoch, skip = epoch + 1, 0


def save_config(workdir, config):
  """Writes config.json, or checks a resumed run against it.

  Raises:
    TrainingError: the work directory holds a run with another model or
      data configuration.
  """
  path = os.path.join(workdir, "config.json")
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    fixed = ("model", "data")
    clashes = [f"{part}.{key}: saved {saved[part].get(key)!r}, now "
               f"{config[part].get(key)!r}"
               for part in fixed for key in config[part]
               if saved.get(part, {}).get(key) != config[part][key]]
    if clashes:
      raise TrainingError(
          f"{workdir} holds a run with a different configuration ("
          f"{'; '.join(clashes)}). Use a new --workdir, or the same flags "
          f"as that run to resume it.")
  os.makedirs(workdir, exist_ok=True)
  with open(path, "w") as f:
    json.dump(config, f, indent=2, sort_keys=True)


def load_config(workdir):
  """Reads a work directory's config.json."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"{path} not found: --workdir must be the directory of a training "
        f"run (python -m pixelcnnpp.train --workdir=...)")
  with open(path) as f:
    return json.load(f)


def _progress(total, initial):
  """A progress bar on a terminal; nothing otherwise."""
  try:
    import tqdm  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  if not sys.stderr.isatty():
    return None
  return tqdm.tqdm(total=total, initial=initial, unit="step",
                   dynamic_ncols=True)


def train(workdir, data_config, model_config, train_config,
          num_epochs=None):
  """Trains, or resumes, the run kept in `workdir`.

  Args:
    workdir: directory for config.json, checkpoints/, tensorboard/ and
      samples/.
    data_config: keyword arguments of `data.load` (name, data_dir,
      image_size, grayscale) plus "conditional" (bool).
    model_config: keyword arguments of `models.build`, without
      image_shape and num_classes, which come from the data.
    train_config: a `TrainConfig`.
    num_epochs: if given, sets train_config.num_steps to this many passes
      over the training images.

  Returns:
    A dict with the final step and, if it evaluated, test bits/dim.

  Raises:
    TrainingError: the loss became NaN (the last good checkpoint is kept),
      or `workdir` holds a different run.
    data.DataSourceError: no source has the data set.
  """
  data_config = dict(data_config)
  conditional = data_config.pop("conditional", False)
  images = data_lib.load(**data_config)
  model_config = dict(model_config, image_shape=list(images.image_shape),
                      num_classes=images.num_classes if conditional else 0)
  if num_epochs:
    train_config = dataclasses.replace(
        train_config,
        num_steps=num_epochs * (images.num_train // train_config.batch_size))
  if conditional and not images.num_classes:
    raise TrainingError(f"--conditional needs labels, and {images.source} "
                        f"has none")
  save_config(workdir, {"model": model_config,
                        "data": dict(data_config, conditional=conditional),
                        "train": dataclasses.asdict(train_config)})
  logging.info("Data: %s, %d training and %d test images of shape %s",
               images.source, images.num_train, images.num_test,
               images.image_shape)

  tf.random.set_seed(train_config.seed)
  trainer = Trainer(model_config, train_config)
  manager = tf.train.CheckpointManager(
      trainer.checkpoint, os.path.join(workdir, "checkpoints"),
      max_to_keep=3)
  if manager.checkpoints:
    restored = restore_newest_good(trainer.checkpoint, manager.checkpoints)
    logging.info("Resumed from %s at step %d", restored, trainer.step)
  else:
    init = next(iter(images.train.batch(train_config.init_batch_size)))
    trainer.initialize(init["image"], _labels(init, conditional))
    logging.info("Data-dependent initialisation on %d images",
                 init["image"].shape[0])
  num_params = sum(int(np.prod(v.shape))
                   for v in trainer.model.trainable_variables)
  logging.info("Model: %s, %d parameters", model_config, num_params)

  # A polite stop (SIGTERM, as sent on preemption) ends the run after the
  # current step, with a checkpoint.
  stop_requested = []
  previous_handler = signal.signal(
      signal.SIGTERM, lambda signum, frame: stop_requested.append(signum))
  try:
    return _train_loop(trainer, manager, images, workdir, conditional,
                       train_config, stop_requested)
  finally:
    signal.signal(signal.SIGTERM, previous_handler)


def _train_loop(trainer, manager, images, workdir, conditional,
                train_config, stop_requested):
  """The steps of `train`, evaluating and saving as configured."""
  writer = tf.summary.create_file_writer(os.path.join(workdir,
                                                      "tensorboard"))
  batches = training_batches(images.train, train_config.batch_size,
                             train_config.seed, trainer.step,
                             images.num_train)
  progress = _progress(train_config.num_steps, trainer.step)
  result = {"step": trainer.step}
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  start_time = time.time()
  train_seconds = 0.0
  window_bits, window_start = [], time.time()
  out_of_time = False

  while trainer.step < train_config.num_steps and not out_of_time:
    step_start = time.time()
    batch_images, batch_labels = next(batches)
    bits = float(trainer.train_step(
        batch_images, batch_labels if conditional else None))
    step = trainer.step
    if not math.isfinite(bits):
      raise TrainingError(
          f"the loss became {bits} at step {step}; the last good "
          f"checkpoint, {manager.latest_checkpoint}, is kept. Lower "
          f"--learning_rate and resume, or start a new --workdir.")
    window_bits.append(bits)
    train_seconds += time.time() - step_start
    if progress:
      progress.update(1)
      progress.set_postfix(bits_per_dim=f"{bits:.3f}")

    out_of_time = (train_config.max_minutes > 0
                   and train_seconds > 60 * train_config.max_minutes)
    if out_of_time:
      logging.info("Stopping after %.1f minutes of training (--max_minutes)",
                   train_seconds / 60)
    if stop_requested:
      manager.save(checkpoint_number=step)
      logging.info("Stopped by signal %d at step %d; saved %s",
                   stop_requested[0], step, manager.latest_checkpoint)
      break
    last = step == train_config.num_steps or out_of_time
    if step % train_config.eval_every == 0 or last:
      seconds = time.time() - window_start
      speed = len(window_bits) * train_config.batch_size / seconds
      train_bits = float(np.mean(window_bits))
      test = evaluation.evaluate(
          trainer.ema_model, images.test,
          max_images=train_config.eval_images or None,
          conditional=conditional)
      logging.info(
          "step %d  time %.0fs  train %.4f  test %.4f (+-%.4f, %d images, "
          "averaged weights)  %.1f images/s  lr %.2e", step,
          train_seconds, train_bits, test["bits_per_dim"],
          test["stderr"], test["count"], speed, trainer.learning_rate())
      with open(metrics_path, "a") as f:
        f.write(json.dumps({
            "step": step, "train_seconds": train_seconds,
            "wall_seconds": time.time() - start_time,
            "train_bits_per_dim": train_bits,
            "test_bits_per_dim": test["bits_per_dim"],
            "test_stderr": test["stderr"], "test_images": test["count"],
            "images_per_second": speed}) + "\n")
      with writer.as_default(step=step):
        tf.summary.scalar("train_bits_per_dim", train_bits)
        tf.summary.scalar("test_bits_per_dim", test["bits_per_dim"])
        tf.summary.scalar("images_per_second", speed)
        tf.summary.scalar("learning_rate", trainer.learning_rate())
      result.update(step=step, train_bits_per_dim=train_bits,
                    test_bits_per_dim=test["bits_per_dim"])
      if train_config.num_samples:
        _write_samples(trainer.ema_model, workdir, step,
                       train_config.num_samples, writer)
      window_bits, window_start = [], time.time()

    if step % train_config.checkpoint_every == 0 or last:
      manager.save(checkpoint_number=step)

  if progress:
    progress.close()
  writer.flush()
  return result


def restore_newest_good(checkpoint, paths):
  """Restores the newest of `paths` that reads back whole; returns it.

  A checkpoint cut short (a full disk, a copy interrupted) or damaged is
  reported with its path and the one before it is tried.

  Raises:
    TrainingError: none of them could be read.
  """
  failures = []
  for path in reversed(paths):
    try:
      checkpoint.restore(path).assert_consumed()
      if failures:
        logging.warning("Using %s instead", path)
      return path
    # The checkpoint reader reports damage in many ways (DataLossError,
    # IndexError for a short read, AssertionError for missing values).
    except Exception as e:  # pylint: disable=broad-except
      message = str(e).strip().splitlines()[0][:300]
      logging.warning("Checkpoint %s is unreadable (%s: %s)", path,
                      type(e).__name__, message)
      failures.append(path)
  raise TrainingError(
      f"no checkpoint could be read ({', '.join(failures)}); move the "
      f"checkpoints directory aside to start again")


def _labels(element, conditional):
  return element["label"] if conditional else None


def _write_samples(model, workdir, step, num, writer):
  """Draws a grid from the averaged model into samples/ and TensorBoard."""
  labels = None
  if model.num_classes:
    labels = np.arange(num) % model.num_classes
  samples = model.sample(num, seed=step, labels=labels).numpy()
  path = os.path.join(workdir, "samples", f"step_{step:07d}.png")
  image_grid.save(samples, path)
  with writer.as_default(step=step):
    tf.summary.image("samples", image_grid.make(samples)[None], step=step)
  logging.info("Samples: %s", path)


def restore(workdir, averaged=True, checkpoint=None):
  """The model of a training run, from its latest (or given) checkpoint.

  Args:
    workdir: a training run's work directory.
    averaged: return the Polyak-averaged weights (as used for reporting);
      False for the raw weights.
    checkpoint: a checkpoint path; None for the latest.

  Returns:
    (model, config) with config the run's config.json as a dict.

  Raises:
    FileNotFoundError: no run or no checkpoint in `workdir`.
  """
  config = load_config(workdir)
  train_config = TrainConfig(**config["train"])
  trainer = Trainer(config["model"], train_config)
  if checkpoint is None:
    state = tf.train.get_checkpoint_state(os.path.join(workdir,
                                                       "checkpoints"))
    if state is None or not state.all_model_checkpoint_paths:
      raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints: "
                              f"the run has not saved one yet")
    restore_newest_good(trainer.checkpoint,
                        list(state.all_model_checkpoint_paths))
  else:
    trainer.checkpoint.restore(checkpoint).assert_consumed()
  model = trainer.ema_model if averaged else trainer.model
  return model, config

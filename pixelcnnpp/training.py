"""Training: Adam with per-step decay, Polyak averaging, resumable runs.

`Trainer` holds everything a run needs to continue exactly where it
stopped: the model, its Polyak (exponential moving) average as a second
model, the optimizer (whose step counter also sets the learning rate), and
the dropout generator's state inside the model. `train` is the loop behind
`python -m pixelcnnpp.train`: it logs, evaluates, draws sample grids and
keeps checkpoints in a work directory.

Training can run on one device or be spread by a `tf.distribute` strategy
(`make_strategy`) over the GPUs of a machine, over several machines, or
over a TPU: synchronous data parallelism, where every replica holds all the
weights, takes an equal share of each batch, and the optimizer sums the
replicas' gradients. The step is the same as on one device with the same
(global) batch, up to the order of floating-point additions. Training can
also compute in 16 bits (`TrainConfig.precision`), with the variables and
the likelihood in float32.
"""

import dataclasses
import json
import math
import os
import shutil
import signal
import sys
import tempfile
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
    precision: "float32", or a Keras mixed-precision policy,
      "mixed_bfloat16" or "mixed_float16": the trained network computes in
      16 bits while its variables, the likelihood head and the averaged
      model stay in float32; "mixed_float16" adds dynamic loss scaling.
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
  precision: str = "float32"

  def __post_init__(self):
    at_least_one = ("batch_size", "num_steps", "init_batch_size",
                    "eval_every", "checkpoint_every")
    for name in at_least_one:
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be at least 1, not "
                         f"{getattr(self, name)}")
    for name in ("eval_images", "num_samples", "max_minutes"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name} must be 0 or more, not "
                         f"{getattr(self, name)}")
    if not 0 < self.learning_rate < float("inf"):
      raise ValueError(f"learning_rate must be positive and finite, not "
                       f"{self.learning_rate}")
    if not self.max_minutes < float("inf"):
      raise ValueError(f"max_minutes must be finite (0 for no limit), not "
                       f"{self.max_minutes}")
    for name in ("lr_decay", "polyak_decay"):
      value = getattr(self, name)
      if not 0 <= value <= 1:
        raise ValueError(f"{name} must lie in [0, 1], not {value}")
    for name in ("beta_1", "beta_2"):
      value = getattr(self, name)
      if not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1), not {value}")


PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


class Trainer(tf.Module):
  """Model, averaged model and optimizer, saved and restored together.

  Every variable is created under `strategy.scope()`, so that a strategy
  mirrors it on each of its replicas. The averaged model always computes
  in float32; the trained model computes in the compute dtype of
  `train_config.precision`.

  Note: with dropout, each replica draws the masks of its share of the
  batch from a random stream of its own, so R replicas drop other units
  than one device would with the same batch: the runs agree in
  distribution, not step for step. Without dropout they take the same
  steps up to the order of float32 sums.

  Args:
    model_config: keyword arguments of `models.build`.
    train_config: a `TrainConfig`.
    strategy: a `tf.distribute.Strategy`; None for the default (one
      device).
  """

  def __init__(self, model_config, train_config, strategy=None):
    super().__init__()
    self.config = train_config
    self.strategy = strategy or tf.distribute.get_strategy()
    if train_config.precision not in PRECISIONS:
      raise ValueError(f"precision must be one of {PRECISIONS}, not "
                       f"{train_config.precision!r}")
    policy = tf.keras.mixed_precision.Policy(train_config.precision)
    with self.strategy.scope():
      self.ema_model = models.build(seed=train_config.seed, **model_config)
      self.model = models.build(seed=train_config.seed, **model_config)
      if policy.compute_dtype != policy.variable_dtype:
        self.model.set_compute_dtype(policy.compute_dtype)
      schedule = tf.keras.optimizers.schedules.ExponentialDecay(
          train_config.learning_rate, decay_steps=1,
          decay_rate=train_config.lr_decay)
      self.optimizer = tf.keras.optimizers.Adam(
          schedule, beta_1=train_config.beta_1, beta_2=train_config.beta_2)
      # float16 gradients underflow unless the loss is scaled up first;
      # the scale halves, and the step is skipped, when they overflow.
      self.loss_scaling = train_config.precision == "mixed_float16"
      if self.loss_scaling:
        self.optimizer = tf.keras.optimizers.LossScaleOptimizer(
            self.optimizer)
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
    """Data-dependent initialisation; both models start from its result.

    It runs on the averaged model, which computes in float32 (the
    per-channel statistics need it), outside any replica: every replica
    gets the same values. With several workers, each computes them from
    the same images, and the first replica's values are then copied to all
    in case machines differ in the last bits.
    """
    with self.strategy.scope():
      self.ema_model.initialize(images, labels)
      if self.strategy.num_replicas_in_sync > 1:
        self._copy_first_replica(self.ema_model.trainable_variables)
      for variable, average in zip(self.model.trainable_variables,
                                   self.ema_model.trainable_variables):
        variable.assign(average)

  @tf.function
  def _copy_first_replica(self, variables):
    """Sets every replica's copy of `variables` to the first replica's."""
    def first_replica_values():
      context = tf.distribute.get_replica_context()
      first = tf.equal(context.replica_id_in_sync_group, 0)
      return context.all_reduce(
          tf.distribute.ReduceOp.SUM,
          [v * tf.cast(first, v.dtype) for v in variables])

    values = self.strategy.run(first_replica_values)
    for variable, value in zip(variables, values):
      self.strategy.extended.update(variable, _assign, args=(value,))

  def train_step(self, images, labels=None):
    """One Adam step on a batch; returns its mean bits/dim (float).

    Args:
      images: uint8 [B, H, W, C]; with a strategy, per-replica values
        from `distributed_batches`.
      labels: int32 [B] (per-replica likewise), or None.
    """
    return self._train_step(images, labels)

  def _step(self, images, labels):
    if not self.loss_scaling:
      bits = self.strategy.run(self._replica_step, args=(images, labels))
      self._update_average()
    else:
      # A step skipped because float16 gradients overflowed leaves the
      # average alone.
      step = tf.identity(self.optimizer.iterations)
      bits = self.strategy.run(self._replica_step, args=(images, labels))
      tf.cond(self.optimizer.iterations > step, self._update_average,
              lambda: None)
    return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, bits,
                                axis=None)

  def _replica_step(self, images, labels):
    """Gradients of this replica's share, applied; its mean bits/dim."""
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      bits = tf.reduce_mean(
          self.model.bits_per_dim(images, labels, training=True))
      loss = bits
      # The shares are equal and the optimizer sums the replicas'
      # gradients, so each mean counts 1/R: the sum is then the gradient
      # of the whole batch's mean, as on one device.
      replicas = self.strategy.num_replicas_in_sync
      if replicas > 1:
        loss = bits / replicas
      loss = self.optimizer.scale_loss(loss)
    gradients = tape.gradient(loss, variables)
    self.optimizer.apply_gradients(zip(gradients, variables))
    return bits

  def _update_average(self):
    steps = tf.cast(self.optimizer.iterations, tf.float32)
    decay = tf.minimum(self.config.polyak_decay, (1 + steps) / (10 + steps))

    def move(average, variable):
      decay_v = tf.cast(decay, variable.dtype)
      return average.assign(decay_v * average + (1 - decay_v) * variable)

    # On each replica's device, with that replica's copies.
    for average, variable in zip(self.ema_model.trainable_variables,
                                 self.model.trainable_variables):
      self.strategy.extended.update(average, move, args=(variable,))

  @tf.function
  def _sum_over_replicas(self, values):
    """Sums a float32 vector over every replica of every worker."""
    return self.strategy.reduce(
        tf.distribute.ReduceOp.SUM,
        self.strategy.run(tf.identity, args=(values,)), axis=None)

  def any_worker(self, flags):
    """For each of `flags` (bools), whether any worker raised it.

    Workers must stop at the same step, or the others would wait for the
    one that left forever: a signal or a time limit seen by one stops all.
    """
    if not self.multi_worker:
      return list(flags)
    raised = self._sum_over_replicas(tf.constant(flags, tf.float32))
    return [bool(count > 0) for count in raised.numpy()]

  @property
  def multi_worker(self):
    """True when other processes train together with this one."""
    return _num_workers(self.strategy) > 1

  @property
  def chief(self):
    """True for the one process that writes the run's files."""
    return self.strategy.extended.should_checkpoint


def _assign(variable, value):
  return variable.assign(value)


def _num_workers(strategy):
  """Processes that train together under `strategy`."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return 1
  cluster = strategy.cluster_resolver.cluster_spec().as_dict()
  return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def training_batches(dataset, batch_size, seed, start_step, num_examples):
  """Endless batches in a fixed order, starting at batch `start_step`.

  Epoch e is shuffled with seed (seed, e) and cut into full batches, so a
  resumed run sees exactly the batches an uninterrupted one would.

  Yields:
    (images uint8 [batch_size, H, W, C], labels int32 [batch_size]).
  """
  epoch, skip = _position(batch_size, start_step, num_examples)
  while True:
    epoch_batches = _epoch_batches(dataset, batch_size, seed, epoch, skip,
                                   num_examples).prefetch(tf.data.AUTOTUNE)
    for element in epoch_batches:
      yield element["image"], element["label"]
    epoch, skip = epoch + 1, 0


def distributed_batches(strategy, dataset, batch_size, seed, start_step,
                        num_examples):
  """`training_batches` shared out among the replicas of `strategy`.

  Every input pipeline (one per worker) builds the same sequence of
  batches of `batch_size` as `training_batches`, keeps its own contiguous
  share of each and cuts that into per-replica batches: at every step the
  R replicas together hold exactly the batch one device would have.

  Yields:
    (images, labels): per-replica values, uint8 [batch_size / R, H, W, C]
    and int32 [batch_size / R] on each replica.
  """
  epoch, skip = _position(batch_size, start_step, num_examples)
  while True:
    def dataset_fn(context, epoch=epoch, skip=skip):
      share = batch_size // context.num_input_pipelines
      first = context.input_pipeline_id * share
      batches = _epoch_batches(dataset, batch_size, seed, epoch, skip,
                               num_examples)
      return (batches
              .map(lambda element: tf.nest.map_structure(
                  lambda t: t[first:first + share], element))
              .rebatch(context.get_per_replica_batch_size(batch_size),
                       drop_remainder=True)
              .prefetch(tf.data.AUTOTUNE))

    for element in strategy.distribute_datasets_from_function(dataset_fn):
      yield element["image"], element["label"]
    epoch, skip = epoch + 1, 0


def _position(batch_size, step, num_examples):
  """(epoch, batch within it) of training step `step`."""
  steps_per_epoch = num_examples // batch_size
  if steps_per_epoch == 0:
    raise TrainingError(f"batch_size {batch_size} is larger than the "
                        f"{num_examples} training images")
  return divmod(step, steps_per_epoch)


def _epoch_batches(dataset, batch_size, seed, epoch, skip, num_examples):
  """Epoch `epoch`, shuffled by its seed, in full batches from `skip`."""
  return (dataset.shuffle(num_examples, seed=seed * 100003 + epoch,
                          reshuffle_each_iteration=False)
          .batch(batch_size, drop_remainder=True)
          .skip(skip))


def make_strategy(name, tpu=None):
  """The `tf.distribute` strategy called `name`, one of `STRATEGIES`.

  Call it first thing in a program: the multi-worker strategy starts this
  process's server, which TensorFlow allows only before it runs anything.

  Args:
    name: "default" (None: one device, the first GPU or else the CPU),
      "mirrored" (every GPU of this machine), "multi_worker" (the
      processes listed in the TF_CONFIG environment variable, each with
      every GPU of its machine or its CPU) or "tpu".
    tpu: for "tpu", the TPU's name or grpc:// address; None or "" for
      the TPU attached to this machine (a TPU VM).

  Raises:
    TrainingError: TF_CONFIG missing or malformed for "multi_worker", or
      no TPU found for "tpu".
  """
  if name == "default":
    return None
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    check_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    try:
      resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
          tpu=tpu or "")
    except ValueError as e:
      raise TrainingError(
          f"no TPU found ({e}): on a TPU VM leave --tpu unset; elsewhere "
          f"pass the TPU's name or grpc:// address with --tpu") from None
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise ValueError(f"unknown strategy {name!r}: choose one of {STRATEGIES}")


_TF_CONFIG_EXAMPLE = (
    "TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:2222\", "
    "\"host2:2222\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}' "
    "on host1, the same with \"index\": 1 on host2")


def check_tf_config():
  """Checks the TF_CONFIG environment variable of a multi-worker run.

  Returns:
    (task type, task index, number of workers).

  Raises:
    TrainingError: TF_CONFIG is unset, not JSON, or does not describe a
      cluster of "host:port" addresses and this process's place in it.
  """
  text = os.environ.get("TF_CONFIG", "")
  advice = (f"Set it on every machine, for example {_TF_CONFIG_EXAMPLE}; "
            f"launch/train_cluster.sh explains it.")
  if not text.strip():
    raise TrainingError(f"--strategy=multi_worker reads the machines of "
                        f"the cluster from the TF_CONFIG environment "
                        f"variable, which is not set. {advice}")
  try:
    config = json.loads(text)
  except json.JSONDecodeError as e:
    raise TrainingError(f"TF_CONFIG is not valid JSON ({e}): {text!r}. "
                        f"{advice}") from None
  cluster = config.get("cluster") if isinstance(config, dict) else None
  task = config.get("task") if isinstance(config, dict) else None
  problem = None
  if not isinstance(cluster, dict) or not (cluster.get("worker")
                                           or cluster.get("chief")):
    problem = "it has no \"cluster\" with a list of \"worker\" addresses"
  elif any(not isinstance(addresses, list)
           or not all(isinstance(a, str) and ":" in a for a in addresses)
           for addresses in cluster.values()):
    problem = "every job of \"cluster\" must be a list of \"host:port\""
  elif not isinstance(task, dict) or task.get("type") not in cluster:
    problem = ("its \"task\" must name this process's job, one of "
               f"{sorted(cluster)}, as \"type\"")
  elif not isinstance(task.get("index"), int) or not (
      0 <= task["index"] < len(cluster[task["type"]])):
    problem = (f"its \"task\" needs an \"index\" from 0 to "
               f"{len(cluster[task['type']]) - 1}, this process's place "
               f"in the {task['type']!r} list")
  if problem:
    raise TrainingError(f"TF_CONFIG does not describe a cluster: "
                        f"{problem}. Got {text!r}. {advice}")
  num_workers = len(cluster.get("chief", [])) + len(cluster.get("worker",
                                                                []))
  return task["type"], task["index"], num_workers


def save_config(workdir, config, write=True):
  """Writes config.json, or checks a resumed run against it.

  Args:
    workdir: the run's directory.
    config: {"model": ..., "data": ..., "train": ...}.
    write: False to check only (the workers other than the chief).

  Raises:
    TrainingError: the work directory holds a run with another model or
      data configuration, or whose checkpoints hold a loss scale when this
      one has none or the other way round.
  """
  path = os.path.join(workdir, "config.json")
  if os.path.exists(path):
    saved = _read_json(path)
    fixed = ("model", "data")
    clashes = [f"{part}.{key}: saved {saved[part].get(key)!r}, now "
               f"{config[part].get(key)!r}"
               for part in fixed for key in config[part]
               if saved.get(part, {}).get(key) != config[part][key]]
    # float32 and mixed_bfloat16 checkpoints are alike; mixed_float16
    # ones also hold the loss scale.
    saved_precision = saved.get("train", {}).get("precision", "float32")
    precision = config["train"].get("precision", "float32")
    if (saved_precision == "mixed_float16") != (
        precision == "mixed_float16"):
      clashes.append(f"train.precision: saved {saved_precision!r}, now "
                     f"{precision!r}")
    if clashes:
      raise TrainingError(
          f"{workdir} holds a run with a different configuration ("
          f"{'; '.join(clashes)}). Use a new --workdir, or the same flags "
          f"as that run to resume it.")
  if not write:
    return
  os.makedirs(workdir, exist_ok=True)
  # Written aside and renamed, so that other workers, and a run that
  # resumes after a crash, never read half a file.
  with open(path + ".tmp", "w") as f:
    json.dump(config, f, indent=2, sort_keys=True)
  os.replace(path + ".tmp", path)


def load_config(workdir):
  """Reads a work directory's config.json."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"{path} not found: --workdir must be the directory of a training "
        f"run (python -m pixelcnnpp.train --workdir=...)")
  return _read_json(path)


def _read_json(path):
  """A run's config.json; ValueError, naming it, if it is not one."""
  with open(path, "rb") as f:
    try:
      config = json.loads(f.read().decode("utf-8"))
      problem = None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
      problem = f"is not valid JSON ({error})"
  if problem is None and not (
      isinstance(config, dict)
      and all(isinstance(config.get(part), dict)
              for part in ("model", "data", "train"))):
    problem = "lacks the \"model\", \"data\" and \"train\" sections"
  if problem:
    raise ValueError(
        f"{path} {problem}: it holds the run's configuration, as "
        f"pixelcnnpp.train wrote it. Restore it from a backup, or use a "
        f"new --workdir.")
  return config


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
          num_epochs=None, strategy=None):
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
    strategy: a `tf.distribute.Strategy` from `make_strategy`, or None
      for one device. `train_config.batch_size` is the global batch,
      shared equally by the replicas. With several workers every one of
      them calls `train` with the same arguments, and `workdir` must be a
      directory they all reach (a shared disk, gs://): the chief writes
      the run's files there, the others only read its checkpoints.

  Returns:
    A dict with the final step and, if it evaluated, test bits/dim.

  Raises:
    TrainingError: the loss became NaN (the last good checkpoint is kept),
      `workdir` holds a different run, or the batch does not split evenly
      over the replicas.
    data.DataSourceError: no source has the data set.
  """
  data_config = dict(data_config)
  conditional = data_config.pop("conditional", False)
  replicas = strategy.num_replicas_in_sync if strategy else 1
  if train_config.batch_size % replicas:
    raise TrainingError(
        f"batch_size {train_config.batch_size} is the global batch, shared "
        f"equally by the {replicas} replicas: make it a multiple of "
        f"{replicas}")
  chief = strategy is None or strategy.extended.should_checkpoint
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
  logging.info("Data: %s, %d training and %d test images of shape %s",
               images.source, images.num_train, images.num_test,
               images.image_shape)

  tf.random.set_seed(train_config.seed)
  # Built before config.json is written, so that a model the settings
  # cannot make leaves the work directory as it was.
  trainer = Trainer(model_config, train_config, strategy)
  save_config(workdir, {"model": model_config,
                        "data": dict(data_config, conditional=conditional),
                        "train": dataclasses.asdict(train_config)},
              write=chief)
  checkpoint_dir = os.path.join(workdir, "checkpoints")
  saved = tf.train.get_checkpoint_state(checkpoint_dir)
  if saved and saved.all_model_checkpoint_paths:
    restored = restore_newest_good(trainer.checkpoint,
                                   list(saved.all_model_checkpoint_paths))
    logging.info("Resumed from %s at step %d", restored, trainer.step)
  else:
    init = next(iter(images.train.batch(train_config.init_batch_size)))
    trainer.initialize(init["image"], _labels(init, conditional))
    logging.info("Data-dependent initialisation on %d images",
                 init["image"].shape[0])
  num_params = sum(int(np.prod(v.shape))
                   for v in trainer.model.trainable_variables)
  logging.info("Model: %s, %d parameters", model_config, num_params)
  if strategy:
    logging.info(
        "%s: %d replicas, %d images each per step; this process is %s",
        type(strategy).__name__, replicas,
        train_config.batch_size // replicas,
        "the chief" if chief else "a worker (its checkpoints are scratch)")

  # Every worker saves (a save can need them all), but only the chief's
  # checkpoints are kept; the others' go to a directory removed at the end.
  scratch = None if chief else tempfile.mkdtemp(prefix="pixelcnnpp-")
  manager = tf.train.CheckpointManager(
      trainer.checkpoint, scratch or checkpoint_dir,
      max_to_keep=3 if chief else 1)

  # A polite stop (SIGTERM, as sent on preemption) ends the run after the
  # current step, with a checkpoint.
  stop_requested = []
  previous_handler = signal.signal(
      signal.SIGTERM, lambda signum, frame: stop_requested.append(signum))
  try:
    return _train_loop(trainer, manager, images, workdir, conditional,
                       train_config, stop_requested, strategy)
  finally:
    signal.signal(signal.SIGTERM, previous_handler)
    if scratch:
      shutil.rmtree(scratch, ignore_errors=True)


def _train_loop(trainer, manager, images, workdir, conditional,
                train_config, stop_requested, strategy):
  """The steps of `train`, evaluating and saving as configured."""
  chief = trainer.chief
  if chief:
    writer = tf.summary.create_file_writer(os.path.join(workdir,
                                                        "tensorboard"))
  else:
    writer = tf.summary.create_noop_writer()
  if strategy:
    batches = distributed_batches(strategy, images.train,
                                  train_config.batch_size,
                                  train_config.seed, trainer.step,
                                  images.num_train)
  else:
    batches = training_batches(images.train, train_config.batch_size,
                               train_config.seed, trainer.step,
                               images.num_train)
  progress = _progress(train_config.num_steps, trainer.step) if chief \
      else None
  step = trainer.step
  result = {"step": step}
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  start_time = time.time()
  train_seconds = 0.0
  window_bits, window_start = [], time.time()
  out_of_time = False
  batch = None

  while step < train_config.num_steps and not out_of_time:
    step_start = time.time()
    if batch is None:
      batch = next(batches)
    bits = float(trainer.train_step(batch[0],
                                    batch[1] if conditional else None))
    previous_step, step = step, trainer.step
    if not math.isfinite(bits):
      last = tf.train.latest_checkpoint(manager.directory)
      kept = (f"the last good checkpoint, {last}, is kept" if last else
              "no checkpoint had been written yet")
      raise TrainingError(
          f"the loss became {bits} at step {previous_step + 1}; {kept}. "
          f"Lower --learning_rate and resume, or start a new --workdir.")
    train_seconds += time.time() - step_start
    if step == previous_step:
      # float16 gradients overflowed: the optimizer halved the loss scale
      # and skipped the step. The same batch goes again, so that step n
      # always trains on batch n and a resumed run sees the same data.
      continue
    batch = None
    result["step"] = step
    window_bits.append(bits)
    if progress:
      progress.update(1)
      progress.set_postfix(bits_per_dim=f"{bits:.3f}")

    out_of_time = (train_config.max_minutes > 0
                   and train_seconds > 60 * train_config.max_minutes)
    signalled, out_of_time = trainer.any_worker([bool(stop_requested),
                                                 out_of_time])
    if out_of_time:
      logging.info("Stopping after %.1f minutes of training (--max_minutes)",
                   train_seconds / 60)
    if signalled:
      manager.save(checkpoint_number=step)
      logging.info("Stopped by %s at step %d; saved %s",
                   f"signal {stop_requested[0]}" if stop_requested
                   else "a signal to another worker", step,
                   manager.latest_checkpoint)
      break
    last = step == train_config.num_steps or out_of_time
    if chief and (step % train_config.eval_every == 0 or last):
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
      result.update(train_bits_per_dim=train_bits,
                    test_bits_per_dim=test["bits_per_dim"])
      if train_config.num_samples:
        _write_samples(trainer.ema_model, workdir, step,
                       train_config.num_samples, writer)
      window_bits, window_start = [], time.time()

    if step % train_config.checkpoint_every == 0 or last:
      manager.save(checkpoint_number=step)

  # Now rather than whenever it is collected: a multi-worker input
  # iterator left to the collector held the chief for seconds.
  batches.close()
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
  # Evaluation and sampling compute in float32, whatever the training did.
  model.set_compute_dtype(model.dtype)
  return model, config

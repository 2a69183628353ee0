"""Training spread over replicas takes the steps one device takes.

A tiny PixelCNN++ (4 filters, one stage) trains for six steps on 8x8
grayscale images with a global batch of 8, three ways at once:

  * on one device (the default strategy), in this process;
  * as two workers (MultiWorkerMirroredStrategy), each a subprocess of
    `python -m pixelcnnpp.train` with one CPU replica, talking over
    loopback ports given in TF_CONFIG: 4 images each per step;
  * as two replicas of one process (MirroredStrategy over two logical CPU
    devices), 4 images each.

The runs must agree at every step: the same losses and, at the end, the
same weights, up to the order in which float32 sums are taken. Measured
here: losses (train and test bits/dim, every step) to 3e-7 relative;
weights and averaged weights to 4e-6 of each variable's largest entry;
Adam's moments to 1.5e-5. Adam divides each gradient by its running RMS,
so where a gradient is near zero a rounding-sized change of it moves the
step by a good part of the learning rate: weights differ more than the
losses do. The tolerances are 1e-5 for losses, 2e-5 for weights and 1e-4
for Adam's moments, which would still catch gradients summed rather than
averaged over the replicas (Adam's step hardly changes with a gradient's
scale, but its moments double).

Dropout is off (dropout_p=0): each replica draws the dropout masks of its
share of the batch from a random stream of its own, so with dropout the
replicas drop other units than one device would, alike in distribution
only.
"""

import json
import os
import socket
import subprocess
import sys
import time
import types

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from pixelcnnpp import data
from pixelcnnpp import training

MODEL = {"model": "pixelcnnpp", "likelihood": "mixture", "num_filters": 4,
         "num_resnet": 1, "num_hierarchies": 1, "num_logistic_mix": 2,
         "dropout_p": 0.0, "channel_coupling": False}
TRAIN = dict(batch_size=8, learning_rate=0.001, num_steps=6,
             init_batch_size=16, eval_every=1, eval_images=8,
             checkpoint_every=3, num_samples=0)
# The same run as command-line flags.
FLAGS = ["--num_filters=4", "--num_resnet=1", "--num_hierarchies=1",
         "--num_logistic_mix=2", "--dropout_p=0", "--batch_size=8",
         "--learning_rate=0.001", "--num_steps=6", "--init_batch_size=16",
         "--eval_every=1", "--eval_images=8", "--checkpoint_every=3",
         "--num_samples=0"]

# Two logical CPU devices must be set up before TensorFlow starts, hence
# a process of its own.
MIRRORED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pixelcnnpp import training
workdir, data, model, train = json.loads(sys.argv[1])
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
training.train(workdir, data, model, training.TrainConfig(**train),
               strategy=strategy)
"""

# Relative to each variable's largest entry.
WEIGHT_TOLERANCE = 2e-5
ADAM_TOLERANCE = 1e-4
LOSS_TOLERANCE = 1e-5


def free_ports(num):
  """`num` ports that were free a moment ago, from binding port 0."""
  sockets = [socket.socket() for _ in range(num)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def write_images(directory, num=72, seed=0):
  """A folder of `num` 8x8 grayscale PNGs: blurred noise."""
  directory.mkdir()
  rng = np.random.default_rng(seed)
  noise = rng.normal(size=(num, 10, 10))
  smooth = sum(noise[:, i:i + 8, j:j + 8] for i in range(3)
               for j in range(3))
  pixels = np.clip(128 + 40 * smooth, 0, 255).astype(np.uint8)
  for n, image in enumerate(pixels):
    Image.fromarray(image).save(directory / f"{n:03d}.png")
  return str(directory)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Work directories of the three runs, started together."""
  root = tmp_path_factory.mktemp("distributed")
  data_config = {"name": write_images(root / "images"), "data_dir": None,
                 "image_size": None, "grayscale": False,
                 "conditional": False}
  workdirs = {name: str(root / name)
              for name in ("one_device", "two_workers", "mirrored")}
  scratch = root / "worker_1_tmp"
  scratch.mkdir()

  cluster = [f"localhost:{port}" for port in free_ports(2)]
  processes, logs = [], []
  for index in range(2):
    env = dict(os.environ, TF_CONFIG=json.dumps({
        "cluster": {"worker": cluster},
        "task": {"type": "worker", "index": index}}))
    if index == 1:
      env["TMPDIR"] = str(scratch)
    logs.append(open(root / f"worker_{index}.log", "w"))
    processes.append(subprocess.Popen(
        [sys.executable, "-m", "pixelcnnpp.train",
         f"--workdir={workdirs['two_workers']}",
         f"--dataset={data_config['name']}", "--strategy=multi_worker",
         *FLAGS],
        env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
  logs.append(open(root / "mirrored.log", "w"))
  processes.append(subprocess.Popen(
      [sys.executable, "-c", MIRRORED, json.dumps(
          [workdirs["mirrored"], data_config, MODEL, TRAIN])],
      stdout=logs[-1], stderr=subprocess.STDOUT))

  try:
    training.train(workdirs["one_device"], data_config, MODEL,
                   training.TrainConfig(**TRAIN))
    deadline = time.time() + 300
    for process in processes:
      process.wait(timeout=max(1, deadline - time.time()))
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()
    for log in logs:
      log.close()
  names = ["worker_0", "worker_1", "mirrored"]
  for name, process in zip(names, processes):
    assert process.returncode == 0, (
        f"{name} failed:\n" + (root / f"{name}.log").read_text()[-3000:])
  return dict(workdirs, scratch=scratch, root=root)


def variables(workdir, step=None):
  """{name: value} of a run's latest checkpoint, or that of `step`."""
  directory = os.path.join(workdir, "checkpoints")
  path = (tf.train.latest_checkpoint(directory) if step is None
          else os.path.join(directory, f"ckpt-{step}"))
  reader = tf.train.load_checkpoint(path)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if "OBJECT_GRAPH" not in name}


def metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def assert_same_steps(workdir, reference):
  """Losses at every step and the final state agree with `reference`.

  Returns:
    The largest deviations seen: {"loss", "weights", "adam"}.
  """
  got, want = metrics(workdir), metrics(reference)
  assert [m["step"] for m in got] == [m["step"] for m in want] == [
      1, 2, 3, 4, 5, 6]
  worst = {"loss": 0.0, "weights": 0.0, "adam": 0.0}
  for mine, theirs in zip(got, want):
    for key in ("train_bits_per_dim", "test_bits_per_dim"):
      np.testing.assert_allclose(mine[key], theirs[key],
                                 rtol=LOSS_TOLERANCE,
                                 err_msg=f"{key} at step {mine['step']}")
      worst["loss"] = max(worst["loss"],
                          abs(mine[key] / theirs[key] - 1))

  saved, expected = variables(workdir), variables(reference)
  assert saved.keys() == expected.keys()
  for name, value in expected.items():
    if value.dtype.kind != "f":
      np.testing.assert_array_equal(saved[name], value, err_msg=name)
      continue
    # Adam's moments are the optimizer's variables other than the step.
    kind = "adam" if name.startswith("optimizer/_variables") else "weights"
    scale = np.abs(value).max()
    tolerance = ADAM_TOLERANCE if kind == "adam" else WEIGHT_TOLERANCE
    np.testing.assert_allclose(saved[name], value, rtol=0,
                               atol=tolerance * scale, err_msg=name)
    worst[kind] = max(worst[kind],
                      np.abs(saved[name] - value).max() / scale)
  return worst


def test_two_workers_take_the_steps_of_one_device(runs):
  """MultiWorkerMirroredStrategy, 2 workers x 4 images = 1 device x 8."""
  worst = assert_same_steps(runs["two_workers"], runs["one_device"])
  print(f"two workers against one device, largest deviations: {worst}")


def test_mirrored_over_two_devices_takes_the_steps_of_one_device(runs):
  """MirroredStrategy, 2 logical CPUs x 4 images = 1 device x 8."""
  worst = assert_same_steps(runs["mirrored"], runs["one_device"])
  print(f"mirrored against one device, largest deviations: {worst}")


def test_only_the_chief_writes_and_its_checkpoint_restores(runs):
  """The chief's files only, the other worker's scratch gone, and the
  checkpoint restores strictly (every value matched) into a model on one
  device, which then scores as the one-device run's model does."""
  workdir = runs["two_workers"]
  assert sorted(os.listdir(workdir)) == [
      "checkpoints", "config.json", "metrics.jsonl", "tensorboard"]
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [
      "checkpoint", "ckpt-3.data-00000-of-00001", "ckpt-3.index",
      "ckpt-6.data-00000-of-00001", "ckpt-6.index"]
  assert os.listdir(runs["scratch"]) == []
  worker_log = (runs["root"] / "worker_1.log").read_text()
  assert "this process is a worker" in worker_log

  batch = np.asarray(
      [np.asarray(Image.open(runs["root"] / "images" / f"{n:03d}.png"))
       for n in range(8)])[..., None]
  for averaged in (True, False):
    model, _ = training.restore(workdir, averaged=averaged)
    reference, _ = training.restore(runs["one_device"], averaged=averaged)
    np.testing.assert_allclose(model.log_prob(batch).numpy(),
                               reference.log_prob(batch).numpy(),
                               rtol=1e-5)


def test_distributed_batches_resume_where_they_stopped(tmp_path):
  """From any step, across an epoch's end, the batches of a strategy's
  input pipeline are those of one device: a resumed run goes on with the
  data it would have had."""
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  images = data.load(write_images(tmp_path / "images", num=20))
  for start in (0, 5):
    one_device = training.training_batches(images.train, 4, 1, start,
                                           images.num_train)
    replicas = training.distributed_batches(strategy, images.train, 4, 1,
                                            start, images.num_train)
    for _ in range(6):  # 18 images make 4 batches an epoch.
      (want, _), (got, _) = next(one_device), next(replicas)
      np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_tf_config_is_checked(monkeypatch):
  """Missing, malformed or incomplete TF_CONFIG: an error saying what to
  set, before any strategy is made."""
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(training.TrainingError, match="not set.*index"):
    training.make_strategy("multi_worker")
  cases = {
      "{cluster": "not valid JSON",
      '{"task": {"type": "worker", "index": 0}}': "no \"cluster\"",
      '{"cluster": {"worker": ["localhost"]}}': "host:port",
      '{"cluster": {"worker": ["a:1", "b:1"]}}': "must name",
      '{"cluster": {"worker": ["a:1", "b:1"]}, '
      '"task": {"type": "worker", "index": 2}}': "index\" from 0 to 1",
  }
  for text, message in cases.items():
    monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(training.TrainingError, match=message):
      training.check_tf_config()
  monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}, '
                     '"task": {"type": "worker", "index": 1}}')
  assert training.check_tf_config() == ("worker", 1, 2)


def test_strategy_errors_on_the_command_line(tmp_path):
  """A multi-worker run without TF_CONFIG, or a TPU run without a TPU,
  stops at once with a message saying what to set, not a traceback."""
  env = {key: value for key, value in os.environ.items()
         if key != "TF_CONFIG"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  finished = subprocess.run(
      [sys.executable, "-m", "pixelcnnpp.train",
       f"--workdir={tmp_path / 'run'}", "--strategy=multi_worker"],
      capture_output=True, text=True, env=env, timeout=120)
  assert finished.returncode == 1
  assert "TF_CONFIG environment variable, which is not set" in (
      finished.stderr)
  assert "Traceback" not in finished.stderr
  assert not (tmp_path / "run").exists()

  with pytest.raises(training.TrainingError, match="no TPU found"):
    training.make_strategy("tpu")


def test_batch_must_split_evenly(tmp_path):
  """A global batch that the replicas cannot share equally is refused."""
  three_replicas = types.SimpleNamespace(num_replicas_in_sync=3)
  with pytest.raises(training.TrainingError, match="multiple of 3"):
    training.train(str(tmp_path), {"name": "unused"}, MODEL,
                   training.TrainConfig(batch_size=8),
                   strategy=three_replicas)


def test_trainer_builds_under_the_strategy_scope():
  """Model, average and optimizer variables belong to the strategy."""
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  trainer = training.Trainer(dict(MODEL, image_shape=[8, 8, 1],
                                  num_classes=0),
                             training.TrainConfig(), strategy)
  optimizer_variables = [v.value for v in trainer.optimizer.variables]
  for variable in (list(trainer.model.trainable_variables)
                   + list(trainer.ema_model.trainable_variables)
                   + optimizer_variables):
    assert strategy.extended.variable_created_in_scope(variable), (
        variable.name)

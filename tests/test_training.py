"""Training state: checkpoint round trip, averaged weights, exact resume.

Tiny models on the real MNIST files; each run is a few steps.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from pixelcnnpp import data
from pixelcnnpp import evaluation
from pixelcnnpp import training

MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared/data/mnist"
MODEL = {"model": "pixelcnnpp", "likelihood": "mixture", "num_filters": 4,
         "num_resnet": 1, "num_hierarchies": 2, "num_logistic_mix": 2,
         "dropout_p": 0.5, "channel_coupling": False}
DATA = {"name": "mnist", "data_dir": str(MNIST), "image_size": None,
        "grayscale": False, "conditional": False}


def config(**overrides):
  defaults = dict(batch_size=8, learning_rate=0.01, init_batch_size=16,
                  eval_every=1000, eval_images=16, checkpoint_every=3,
                  num_samples=0, num_steps=6)
  return training.TrainConfig(**dict(defaults, **overrides))


def variables(workdir):
  """{name: value} of every variable of the run's latest checkpoint."""
  path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  reader = tf.train.load_checkpoint(path)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if "OBJECT_GRAPH" not in name}


@pytest.fixture(scope="module")
def images():
  return data.load("mnist", data_dir=str(MNIST)).test.batch(8).take(1)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
  """Six steps in one invocation."""
  workdir = str(tmp_path_factory.mktemp("straight"))
  training.train(workdir, DATA, MODEL, config())
  return workdir


def test_resume_is_exact(straight_run, tmp_path):
  """Three steps, stop, three more: every saved value equals the straight
  run's, bit for bit: weights, averaged weights, Adam's moments, the step
  (which sets the learning rate) and the dropout generator's state; and
  equal weights can only come from the same batches in the same order."""
  workdir = str(tmp_path)
  training.train(workdir, DATA, MODEL, config(num_steps=3))
  training.train(workdir, DATA, MODEL, config(num_steps=6))

  resumed, straight = variables(workdir), variables(straight_run)
  assert resumed.keys() == straight.keys()
  assert any("ema_model" in name for name in straight)
  assert any("optimizer" in name for name in straight)
  for name in straight:
    np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)


def test_resume_runs_no_initialisation(straight_run, monkeypatch, tmp_path):
  """A resumed run restores instead of initialising from data."""
  def refuse(*args, **kwargs):
    raise AssertionError("data-dependent initialisation ran on resume")
  monkeypatch.setattr(training.Trainer, "initialize", refuse)
  workdir = str(tmp_path / "copy")
  shutil.copytree(straight_run, workdir)
  before = variables(workdir)
  result = training.train(workdir, DATA, MODEL, config(num_steps=7))
  assert result["step"] == 7
  after = variables(workdir)
  assert not all(np.array_equal(before[name], after[name])
                 for name in before if "model/" in name)


def test_round_trip_restores_raw_and_averaged_weights(straight_run, images):
  """Restore strictly into fresh models: log_prob is bitwise identical for
  the raw and for the averaged weights, and the two differ."""
  trainer = training.Trainer(dict(MODEL, image_shape=[28, 28, 1],
                                  num_classes=0), config())
  path = trainer.checkpoint.save(os.path.join(straight_run, "copy", "c"))
  batch = next(iter(images))["image"]
  raw = trainer.model.log_prob(batch).numpy()

  again, _ = evaluation_model(straight_run, path, averaged=False)
  np.testing.assert_array_equal(again.log_prob(batch).numpy(), raw)

  ema_before = trainer.ema_model.log_prob(batch).numpy()
  ema_after, _ = evaluation_model(straight_run, path, averaged=True)
  np.testing.assert_array_equal(ema_after.log_prob(batch).numpy(),
                                ema_before)


def evaluation_model(workdir, path, averaged):
  return training.restore(workdir, averaged=averaged, checkpoint=path)


def test_averaged_weights_move_and_are_used(straight_run, images):
  """The average moved away from the raw weights and from its start, and
  `restore` (used by evaluate and sample) returns it by default."""
  model, _ = training.restore(straight_run)
  raw_model, _ = training.restore(straight_run, averaged=False)
  fresh = training.Trainer(dict(MODEL, image_shape=[28, 28, 1],
                                num_classes=0), config())
  moved = [(average.name, average.shape) for average, raw, start in zip(
      model.trainable_variables, raw_model.trainable_variables,
      fresh.ema_model.trainable_variables)
           if not np.array_equal(average.numpy(), raw.numpy())
           and not np.array_equal(average.numpy(), start.numpy())]
  assert len(moved) == len(model.trainable_variables)

  batch = next(iter(images))["image"]
  assert not np.array_equal(model.log_prob(batch).numpy(),
                            raw_model.log_prob(batch).numpy())
  result = evaluation.evaluate(model, data.load(
      "mnist", data_dir=str(MNIST)).test, max_images=20)
  assert result["count"] == 20


def test_killed_run_resumes_exactly(straight_run, tmp_path):
  """SIGKILL after the first checkpoint, restart: the final state equals
  the run that was never interrupted."""
  workdir = tmp_path / "killed"
  flags = [f"--workdir={workdir}", f"--data_dir={MNIST}", "--num_steps=6",
           "--checkpoint_every=3", "--batch_size=8", "--learning_rate=0.01",
           "--init_batch_size=16", "--eval_every=1000", "--eval_images=16",
           "--num_samples=0", "--num_filters=4", "--num_resnet=1",
           "--num_hierarchies=2", "--num_logistic_mix=2", "--dropout_p=0.5"]
  command = [sys.executable, "-m", "pixelcnnpp.train", *flags]
  process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  state = workdir / "checkpoints" / "checkpoint"
  deadline = time.time() + 300
  while process.poll() is None and not (
      state.exists() and "ckpt-3" in state.read_text()):
    assert time.time() < deadline, "no checkpoint within 5 minutes"
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()

  finished = subprocess.run(command, capture_output=True, text=True,
                            timeout=600)
  assert finished.returncode == 0, finished.stderr[-3000:]
  assert "Resumed from" in finished.stderr
  resumed, straight = variables(str(workdir)), variables(straight_run)
  for name in straight:
    np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, monkeypatch):
  """A NaN loss ends the run with a clear error; no checkpoint of it."""
  workdir = str(tmp_path)
  training.train(workdir, DATA, MODEL, config(num_steps=3))
  step = training.Trainer.train_step
  monkeypatch.setattr(training.Trainer, "train_step",
                      lambda self, *a: float("nan") + 0 * float(step(self,
                                                                    *a)))
  with pytest.raises(training.TrainingError, match="became nan at step 4"):
    training.train(workdir, DATA, MODEL, config(num_steps=6))
  assert tf.train.latest_checkpoint(
      os.path.join(workdir, "checkpoints")).endswith("ckpt-3")


def test_corrupt_checkpoint_falls_back_to_previous(straight_run, tmp_path,
                                                   caplog):
  """A truncated newest checkpoint is reported by path; the run resumes
  from the one before and ends exactly where the straight run did."""
  workdir = tmp_path / "corrupt"
  shutil.copytree(straight_run, workdir)
  newest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
  assert newest.endswith("ckpt-6")
  for shard in workdir.glob("checkpoints/ckpt-6.data-*"):
    shard.write_bytes(shard.read_bytes()[:100])

  training.train(str(workdir), DATA, MODEL, config())
  assert f"Checkpoint {newest} is unreadable" in caplog.text
  resumed, straight = variables(str(workdir)), variables(straight_run)
  for name in straight:
    np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
  """On SIGTERM (preemption) the run saves its current step and exits 0."""
  workdir = tmp_path / "preempted"
  command = [sys.executable, "-m", "pixelcnnpp.train",
             f"--workdir={workdir}", f"--data_dir={MNIST}",
             "--num_steps=100000", "--checkpoint_every=100000",
             "--batch_size=8", "--init_batch_size=16", "--num_samples=0",
             "--num_filters=4", "--num_hierarchies=2",
             "--num_logistic_mix=2"]
  process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  log = ""
  for line in process.stderr:
    log += line
    if "parameters" in line:
      break
    assert time.time() < deadline
  time.sleep(3)
  process.send_signal(signal.SIGTERM)
  log += process.stderr.read()
  assert process.wait(timeout=120) == 0, log[-2000:]
  assert "Stopped by signal 15" in log
  saved = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
  assert saved is not None and int(saved.rsplit("-", 1)[1]) >= 1


@pytest.mark.parametrize("setting, message", [
    (dict(batch_size=0), "batch_size must be at least 1, not 0"),
    (dict(num_steps=-5), "num_steps must be at least 1, not -5"),
    (dict(checkpoint_every=0), "checkpoint_every must be at least 1"),
    (dict(eval_images=-1), "eval_images must be 0 or more, not -1"),
    (dict(learning_rate=-1.0), "learning_rate must be positive and "
     "finite, not -1.0"),
    (dict(learning_rate=float("nan")), "learning_rate must be positive"),
    (dict(learning_rate=float("inf")), "learning_rate must be positive"),
    (dict(max_minutes=float("nan")), "max_minutes must be finite"),
    (dict(polyak_decay=1.5), "polyak_decay must lie in [0, 1], not 1.5"),
    (dict(beta_1=1.0), "beta_1 must lie in [0, 1), not 1.0"),
])
def test_impossible_settings_are_refused_at_once(setting, message):
  with pytest.raises(ValueError) as error:
    config(**setting)
  assert str(error.value).startswith(message)


def test_a_model_that_cannot_be_built_leaves_the_workdir_alone(tmp_path):
  """No config.json is written, so the directory takes other settings."""
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match="num_logistic_mix must be at least 1"):
    training.train(str(workdir), DATA, dict(MODEL, num_logistic_mix=0),
                   config())
  assert not (workdir / "config.json").exists()


@pytest.mark.parametrize("content, problem", [
    (b'{"data": ', "not valid JSON"), (b"\xff\xfe\x00garbage", "not valid JSON"),
    (b"[]", "lacks the"), (b'{"model": {}, "data": {}}', "lacks the"),
])
def test_corrupt_config_is_named(tmp_path, content, problem):
  (tmp_path / "config.json").write_bytes(content)
  with pytest.raises(ValueError) as error:
    training.load_config(str(tmp_path))
  message = str(error.value)
  assert str(tmp_path / "config.json") in message
  assert problem in message and "new --workdir" in message
  if problem == "lacks the":
    return
  with pytest.raises(ValueError, match="not valid JSON"):
    training.train(str(tmp_path), DATA, MODEL, config())

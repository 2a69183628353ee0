"""The main job end to end: train on the real MNIST files, evaluate, resume.

Runs the command-line programs as a user would, with a tiny model, on the
IDX files in ../shared/data/mnist.
"""

import json
import logging
import os
import pathlib
import subprocess
import sys

from absl import app
import numpy as np
import pytest
import tensorflow as tf

from pixelcnnpp import evaluation
from pixelcnnpp import models
from pixelcnnpp import training

MNIST = pathlib.Path(__file__).resolve().parents[2] / "shared/data/mnist"
TINY = ["--num_filters=8", "--num_resnet=1", "--num_hierarchies=2",
        "--num_logistic_mix=3", "--batch_size=16", "--init_batch_size=32",
        "--eval_images=200", "--num_samples=4", "--learning_rate=0.005"]


def run(module, *flags):
  """Runs `python -m module flags`; returns the completed process."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", module, *flags],
                        capture_output=True, text=True, env=env,
                        timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A workdir after 30 steps on MNIST, then resumed to 40."""
  workdir = tmp_path_factory.mktemp("run")
  first = run("pixelcnnpp.train", f"--workdir={workdir}",
              f"--data_dir={MNIST}", "--num_steps=30", "--eval_every=30",
              "--checkpoint_every=10", *TINY)
  assert first.returncode == 0, first.stderr[-3000:]
  second = run("pixelcnnpp.train", f"--workdir={workdir}",
               f"--data_dir={MNIST}", "--num_steps=40", "--eval_every=10",
               "--checkpoint_every=10", *TINY)
  assert second.returncode == 0, second.stderr[-3000:]
  return workdir, first.stderr, second.stderr


def test_training_learns_and_keeps_checkpoints(trained):
  """Test bits/dim falls far below 8 and checkpoints are written."""
  workdir, first_log, _ = trained
  assert "IDX files in" in first_log
  lines = [line for line in first_log.splitlines() if " step 30 " in line]
  assert lines, first_log[-2000:]
  test_bits = float(lines[0].split(" test ")[1].split()[0])
  assert test_bits < 4.0
  checkpoints = workdir / "checkpoints"
  assert (checkpoints / "checkpoint").exists()
  assert sorted(p.name for p in checkpoints.glob("ckpt-*.index")) == [
      "ckpt-20.index", "ckpt-30.index", "ckpt-40.index"]
  assert list((workdir / "samples").glob("step_*.png"))
  assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))


def test_second_invocation_resumes(trained):
  """The rerun restores step 30 and trains only steps 31 to 40."""
  _, _, second_log = trained
  assert "Resumed from" in second_log and "at step 30" in second_log
  assert "Data-dependent initialisation" not in second_log
  assert " step 40 " in second_log and " step 10 " not in second_log


def test_evaluate_counts_every_test_image(trained, tmp_path):
  """The evaluation scores all 10,000 test images with the EMA weights."""
  workdir, _, _ = trained
  output = tmp_path / "result.json"
  result = run("pixelcnnpp.evaluate", f"--workdir={workdir}",
               f"--data_dir={MNIST}", f"--output={output}")
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads(output.read_text())
  assert summary["count"] == 10000
  assert 0.5 < summary["bits_per_dim"] < 4.0
  assert 0 < summary["stderr"] < 0.1


def test_sample_writes_png_and_npz_that_evaluate_scores(trained, tmp_path):
  """Sampling writes a PNG grid and integer images in range; evaluate
  scores that .npz, every image counted."""
  workdir, _, _ = trained
  png, npz = tmp_path / "grid.png", tmp_path / "raw.npz"
  result = run("pixelcnnpp.sample", f"--workdir={workdir}", "--num=4",
               f"--out={png}", f"--npz={npz}")
  assert result.returncode == 0, result.stderr[-3000:]
  images = np.load(npz)["images"]
  assert images.shape == (4, 28, 28, 1) and images.dtype == np.uint8
  assert png.stat().st_size > 100

  output = tmp_path / "scored.json"
  scored = run("pixelcnnpp.evaluate", f"--workdir={workdir}",
               f"--images={npz}", f"--output={output}")
  assert scored.returncode == 0, scored.stderr[-3000:]
  summary = json.loads(output.read_text())
  assert summary["count"] == 4 and 0 < summary["bits_per_dim"] < 8


def test_clashing_configuration_is_refused(trained):
  """Resuming a workdir with another architecture is a clear error."""
  workdir, _, _ = trained
  result = run("pixelcnnpp.train", f"--workdir={workdir}",
               f"--data_dir={MNIST}", "--num_steps=50",
               *[flag for flag in TINY if "num_filters" not in flag],
               "--num_filters=16")
  assert result.returncode == 1
  assert "different configuration" in result.stderr
  assert "num_filters" in result.stderr
  assert "Traceback" not in result.stderr


def test_missing_workdir_and_bad_flag_are_clear(tmp_path):
  """A user's mistakes get one clear line each, not a traceback."""
  missing = run("pixelcnnpp.evaluate", f"--workdir={tmp_path / 'none'}")
  assert missing.returncode == 1
  assert "config.json not found" in missing.stderr
  assert "Traceback" not in missing.stderr
  bad = run("pixelcnnpp.train", f"--workdir={tmp_path}",
            "--likelihood=gaussian")
  assert bad.returncode != 0
  assert "likelihood" in bad.stderr and "mixture" in bad.stderr
  assert "Traceback" not in bad.stderr
  workdir = tmp_path / "new"
  zero = run("pixelcnnpp.train", f"--workdir={workdir}", "--batch_size=0")
  assert zero.returncode == 1
  assert "--batch_size must be at least 1, not 0" in zero.stderr
  assert "Traceback" not in zero.stderr
  assert not workdir.exists()


def test_programs_share_one_restore_with_clear_errors(tmp_path, monkeypatch,
                                                      caplog):
  """What evaluate.py and sample.py run: arguments checked, the run
  restored, the command's result returned, and a user's mistake logged
  as one line with exit status 1."""
  def command(model, config):
    return model, config["data"]

  with pytest.raises(app.UsageError, match="unexpected arguments"):
    evaluation.run_with_restored_model(["prog", "stray"], str(tmp_path),
                                       True, command)
  with pytest.raises(app.UsageError, match="--workdir is required"):
    evaluation.run_with_restored_model(["prog"], None, True, command)
  with pytest.raises(SystemExit) as missing:
    evaluation.run_with_restored_model(["prog"], str(tmp_path / "none"),
                                       True, command)
  assert missing.value.code == 1
  assert "config.json not found" in caplog.text

  restored = []

  def fake_restore(workdir, averaged):
    restored.append((workdir, averaged))
    return "model", {"data": "config"}

  monkeypatch.setattr(training, "restore", fake_restore)
  assert evaluation.run_with_restored_model(
      ["prog"], "run", False, command) == ("model", "config")
  assert restored == [("run", False)]

  def bad_images(model, config):
    raise models.ImageError("images must have shape [batch, 8, 8, 1]")

  with pytest.raises(SystemExit) as mistake:
    evaluation.run_with_restored_model(["prog"], "run", True, bad_images)
  assert mistake.value.code == 1
  assert "images must have shape [batch, 8, 8, 1]" in caplog.text


def test_labels_flag_gives_each_image_its_class():
  """--labels of evaluate and sample: one for all or one per image, and
  scores that use them; clear errors for anything else."""
  model = models.build("pixelcnnpp", image_shape=(4, 4, 1), num_filters=4,
                       num_hierarchies=1, num_classes=3, dropout_p=0.0)
  images = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 1),
                                             dtype=np.uint8)
  labels_from_flag = evaluation.labels_from_flag
  np.testing.assert_array_equal(labels_from_flag(["2"], model, 5),
                                [2, 2, 2, 2, 2])
  np.testing.assert_array_equal(
      labels_from_flag(["0", "1", "2", "1", "0"], model, 5), [0, 1, 2, 1, 0])
  np.testing.assert_array_equal(
      labels_from_flag(None, model, 5, default_cycle=True), [0, 1, 2, 0, 1])
  for values, message in [(None, "class-conditional"),
                          (["x"], "integers"), (["3"], r"0\.\.2"),
                          (["1", "2"], "2 labels for 5 images")]:
    with pytest.raises(ValueError, match=message):
      labels_from_flag(values, model, 5)
  unconditional = models.build("pixelcnnpp", image_shape=(4, 4, 1),
                               num_filters=4, num_hierarchies=1)
  assert labels_from_flag(None, unconditional, 5) is None
  with pytest.raises(ValueError, match="without --conditional"):
    labels_from_flag(["1"], unconditional, 5)

  labels = labels_from_flag(["0", "1", "2", "1", "0"], model, 5)
  scored = evaluation.evaluate_images(model, images, batch_size=2,
                                      labels=labels)
  expected = model.bits_per_dim(images, labels).numpy()
  # Batches of 2 and of 5 add up float32 terms in other orders.
  np.testing.assert_allclose(scored["per_image"], expected, rtol=0,
                             atol=1e-4)
  other = model.bits_per_dim(images, (labels + 1) % 3).numpy()
  assert np.abs(other - expected).min() > 1e-3


def test_evaluation_logs_its_progress(caplog):
  """Every `log_every` batches: the images scored and their mean so far."""
  model = models.build("pixelcnnpp", image_shape=(4, 4, 1), num_filters=4,
                       num_hierarchies=1, dropout_p=0.0)
  images = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 1),
                                             dtype=np.uint8)
  expected = model.bits_per_dim(images).numpy()
  caplog.set_level(logging.INFO, logger="absl")
  evaluation.evaluate_images(model, images, batch_size=2, log_every=2)
  lines = [r.getMessage() for r in caplog.records if "scored" in
           r.getMessage()]
  assert lines == [f"4 images scored, {expected[:4].mean():.4f} bits/dim "
                   f"so far"]
  caplog.clear()
  dataset = tf.data.Dataset.from_tensor_slices({"image": images,
                                                "label": np.zeros(5)})
  evaluation.evaluate(model, dataset, batch_size=2, log_every=1)
  counts = [r.getMessage().split()[0] for r in caplog.records
            if "scored" in r.getMessage()]
  assert counts == ["2", "4", "5"]

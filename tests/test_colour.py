"""Colour data and the user's own images, end to end.

The command-line programs train, evaluate and sample on small RGB images
that the tests draw themselves, in two class subfolders: with the mixture
head, with channel coupling and class labels, with the softmax head, and
in grayscale. A corrupt file stops training with a message that names it,
unless --skip_bad_files is given. CIFAR-10 goes through the TFDS path on
mocked data, and coupled colour sampling is checked fast against
reference.

Each command-line run spends most of its time importing TensorFlow and
tracing, so all of them start together in the background before the
first test of this module, and the in-process tests, which come first,
run meanwhile.
"""

import concurrent.futures
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from pixelcnnpp import data
from pixelcnnpp import evaluation
from pixelcnnpp import training

NUM_PER_CLASS = 20
TEST_FRACTION = 0.1  # What data.load holds out of a folder by default.
NUM_TEST = round(2 * NUM_PER_CLASS * TEST_FRACTION)
NUM_TRAIN = 2 * NUM_PER_CLASS - NUM_TEST

# No sample grids while training: sample.py draws from the runs instead,
# and a grid would cost each run another trace of the sampler.
TINY = ["--num_filters=4", "--num_resnet=1", "--num_hierarchies=2",
        "--num_logistic_mix=2", "--batch_size=8", "--init_batch_size=16",
        "--eval_images=32", "--num_samples=0", "--num_steps=3",
        "--eval_every=3", "--image_size=8"]

# Each run: the folder it trains on, its extra flags, whether sample.py
# draws from it, and what the model in its config.json must hold. The
# "colour" run reads the folder with a corrupt file, which also shows that
# --skip_bad_files reaches evaluate.py through the saved configuration.
# Grayscale sampling from scratch is the MNIST job's, so that run is not
# sampled; it scores and completes the user's own photographs instead
# ("own_images"), which are larger, not square, and in colour.
VARIANTS = {
    "colour": dict(
        folder="damaged", flags=["--skip_bad_files"], sample=True,
        model={"image_shape": [8, 8, 3], "likelihood": "mixture",
               "channel_coupling": False, "num_classes": 0}),
    "coupled_conditional": dict(
        folder="clean", flags=["--channel_coupling", "--conditional"],
        sample=True,
        model={"image_shape": [8, 8, 3], "likelihood": "mixture",
               "channel_coupling": True, "num_classes": 2}),
    "softmax": dict(
        folder="clean", flags=["--likelihood=softmax"], sample=True,
        model={"image_shape": [8, 8, 3], "likelihood": "softmax",
               "num_classes": 0}),
    "grayscale": dict(
        folder="clean", flags=["--grayscale"], sample=False,
        own_images=True,
        model={"image_shape": [8, 8, 1], "likelihood": "mixture",
               "num_classes": 0}),
}

# The user's own photographs: colour, 20 wide and 16 high.
NUM_PHOTOS = 3
PHOTO_SIZE = (16, 20)


def write_photos(folder, seed=1):
  """Writes NUM_PHOTOS random colour PNGs of PHOTO_SIZE into `folder`."""
  folder.mkdir(parents=True)
  rng = np.random.default_rng(seed)
  for n in range(NUM_PHOTOS):
    pixels = rng.integers(0, 256, PHOTO_SIZE + (3,), np.uint8)
    Image.fromarray(pixels).save(folder / f"photo_{n}.png")


def write_images(folder, seed=0):
  """Writes 12x10 RGB PNGs, NUM_PER_CLASS in each of class_0/ (vertical
  colour ramps) and class_1/ (horizontal ones), with a little noise."""
  rng = np.random.default_rng(seed)
  rows, cols = np.mgrid[0:12, 0:10]
  ramps = [rows[..., None] / 11.0, cols[..., None] / 9.0]
  for label, ramp in enumerate(ramps):
    class_dir = folder / f"class_{label}"
    class_dir.mkdir(parents=True)
    for n in range(NUM_PER_CLASS):
      start, end = rng.integers(0, 256, (2, 3))
      image = start + (end - start) * ramp + rng.normal(0, 6, (12, 10, 3))
      image = np.clip(np.round(image), 0, 255).astype(np.uint8)
      Image.fromarray(image).save(class_dir / f"{n:02d}.png")


class Runs:
  """Command-line runs in the background; teardown ends any still on."""

  def __init__(self, num_threads):
    self._processes = []
    self._lock = threading.Lock()
    self.pool = concurrent.futures.ThreadPoolExecutor(num_threads)

  def run(self, module, *flags):
    """Runs `python -m module flags`; returns (returncode, output)."""
    # One thread each: several runs share two cores.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    process = subprocess.Popen(
        [sys.executable, "-m", module, *flags], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env)
    with self._lock:
      self._processes.append(process)
    stdout, stderr = process.communicate(timeout=1200)
    return process.returncode, stdout + stderr

  def train_evaluate_sample(self, workdir, folder, flags, sample,
                            own_images=None):
    """Trains, then evaluates and (if `sample`) samples side by side.

    With `own_images`, a folder, also scores those images and completes
    two of them.

    Returns:
      {"train": (returncode, output)} and, unless training failed,
      "evaluate" and maybe "sample", "evaluate_own" and "complete_own"
      likewise.
    """
    results = {"train": self.run("pixelcnnpp.train", f"--dataset={folder}",
                                 f"--workdir={workdir}", *TINY, *flags)}
    if results["train"][0] != 0:
      return results
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
      futures = {"evaluate": pool.submit(
          self.run, "pixelcnnpp.evaluate", f"--workdir={workdir}",
          f"--output={workdir / 'evaluation.json'}")}
      if sample:
        futures["sample"] = pool.submit(
            self.run, "pixelcnnpp.sample", f"--workdir={workdir}",
            "--num=2", f"--out={workdir / 'samples.png'}")
      if own_images:
        futures["evaluate_own"] = pool.submit(
            self.run, "pixelcnnpp.evaluate", f"--workdir={workdir}",
            f"--images={own_images}",
            f"--output={workdir / 'own_evaluation.json'}")
        futures["complete_own"] = pool.submit(
            self.run, "pixelcnnpp.sample", f"--workdir={workdir}",
            f"--complete={own_images}", "--num=2", "--method=reference",
            f"--out={workdir / 'completed.png'}",
            f"--npz={workdir / 'completed.npz'}")
      results.update(
          {program: future.result() for program, future in futures.items()})
    return results

  def close(self):
    with self._lock:
      for process in self._processes:
        if process.poll() is None:
          process.kill()
    self.pool.shutdown(wait=True)


@pytest.fixture(scope="module", autouse=True)
def cli_runs(tmp_path_factory):
  """Starts every command-line run of the module in the background.

  Yields:
    {"root": the directory holding the runs' work directories, each
    named after its run; each name of VARIANTS: a future of what
    `Runs.train_evaluate_sample` returns; "corrupt": a future of
    (returncode, output) of training on the folder with a corrupt file}.
  """
  root = tmp_path_factory.mktemp("colour")
  folders = {"clean": root / "images", "damaged": root / "damaged"}
  write_images(folders["clean"])
  write_photos(root / "photos")
  shutil.copytree(folders["clean"], folders["damaged"])
  (folders["damaged"] / "class_1" / "broken.png").write_bytes(
      b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)

  runs = Runs(len(VARIANTS) + 1)
  started = {"root": root}
  for name, variant in VARIANTS.items():
    started[name] = runs.pool.submit(
        runs.train_evaluate_sample, root / name,
        folders[variant["folder"]], variant["flags"], variant["sample"],
        root / "photos" if variant.get("own_images") else None)
  started["corrupt"] = runs.pool.submit(
      runs.run, "pixelcnnpp.train", f"--dataset={folders['damaged']}",
      f"--workdir={root / 'corrupt'}", *TINY)
  yield started
  runs.close()


def test_coupled_colour_sampling_fast_equals_reference(build_model):
  """The row-cached sampler draws the reference's images, bit for bit."""
  model = build_model((5, 6, 3), channel_coupling=True)
  fast = model.sample(2, seed=7, method="fast").numpy()
  reference = model.sample(2, seed=7, method="reference").numpy()
  assert fast.shape == (2, 5, 6, 3)
  np.testing.assert_array_equal(fast, reference)


def test_own_images_are_read_as_the_run_read_its_data(tmp_path,
                                                      build_model):
  """A run's image size and colour settings apply to the user's images.

  Colour photographs of 20x16 for a run trained at 8x8 in grayscale:
  cropped, resized and converted as `data.load_images` does with those
  settings. Grayscale images for a square colour model whose run kept
  its data's size: resized to the model's side, the grey repeated in
  three channels, and scored.
  """
  write_photos(tmp_path / "photos")
  grey = tmp_path / "grey"
  grey.mkdir()
  rng = np.random.default_rng(2)
  for n in range(2):
    Image.fromarray(rng.integers(0, 256, PHOTO_SIZE, np.uint8)).save(
        grey / f"{n}.png")

  gray_model = build_model((8, 8, 1), num_filters=4)
  images = evaluation.load_images_as_trained(
      tmp_path / "photos", gray_model, {"image_size": 8, "grayscale": True})
  assert images.shape == (NUM_PHOTOS, 8, 8, 1)
  np.testing.assert_array_equal(
      images, data.load_images(tmp_path / "photos", image_size=8,
                               grayscale=True))

  colour_model = build_model((6, 6, 3), num_filters=4)
  images = evaluation.load_images_as_trained(
      grey, colour_model, {"image_size": None, "grayscale": False})
  assert images.shape == (2, 6, 6, 3)
  np.testing.assert_array_equal(images[..., 1:], images[..., :1].repeat(2, -1))
  np.testing.assert_array_equal(
      images[..., :1], data.load_images(grey, image_size=6))
  result = evaluation.evaluate_images(colour_model, images)
  assert result["count"] == 2 and 0 < result["bits_per_dim"] < 16


def test_cifar10_through_tfds_in_colour(tmp_path, caplog):
  """CIFAR-10 from (mocked) TFDS: 32x32x3 images, a couple of steps.

  `tfds.testing.mock_data` makes examples from the features that the
  CIFAR-10 builder declares, but takes the split names from the data
  set's metadata, which the TFDS wheel does not ship. A dataset_info.json
  that names the two splits stands in for it.
  """
  version = str(tfds.builder_cls("cifar10").VERSION)
  metadata = tmp_path / "tfds" / "cifar10" / version
  metadata.mkdir(parents=True)
  splits = [{"name": split, "shardLengths": ["24"], "numBytes": "0"}
            for split in ("train", "test")]
  (metadata / "dataset_info.json").write_text(json.dumps(
      {"name": "cifar10", "version": version, "fileFormat": "tfrecord",
       "splits": splits}))

  data_dir = str(tmp_path / "tfds")
  data_config = {"name": "cifar10", "data_dir": data_dir,
                 "image_size": None, "grayscale": False,
                 "conditional": False}
  model_config = {"model": "pixelcnnpp", "likelihood": "mixture",
                  "num_filters": 4, "num_resnet": 1, "num_hierarchies": 2,
                  "num_logistic_mix": 2, "dropout_p": 0.1,
                  "channel_coupling": True}
  train_config = training.TrainConfig(
      batch_size=8, init_batch_size=16, num_steps=2, eval_every=2,
      eval_images=8, checkpoint_every=2, num_samples=0)
  workdir = tmp_path / "run"
  caplog.set_level(logging.INFO, logger="absl")
  with tfds.testing.mock_data(num_examples=24, data_dir=data_dir,
                              policy=tfds.testing.MockPolicy.USE_FILES):
    result = training.train(str(workdir), data_config, model_config,
                            train_config)

  assert "TFDS data set 'cifar10'" in caplog.text
  assert result["step"] == 2
  assert math.isfinite(result["test_bits_per_dim"])
  config = json.loads((workdir / "config.json").read_text())
  assert config["model"]["image_shape"] == [32, 32, 3]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_train_evaluate_and_sample(cli_runs, name):
  """Each run trains, scores every test image, and draws in its colours.

  The model takes its image shape and classes from the folder;
  evaluate.py rebuilds the same test split from the saved configuration;
  a colour model's grid is colour.
  """
  results = cli_runs[name].result()
  workdir = cli_runs["root"] / name
  for program, (returncode, output) in results.items():
    assert returncode == 0, f"{program} failed:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]

  _, train_output = results["train"]
  model = VARIANTS[name]["model"]
  shape = tuple(model["image_shape"])
  assert (f"{NUM_TRAIN} training and {NUM_TEST} test images of shape "
          f"{shape}") in train_output
  assert " step 3 " in train_output
  config = json.loads((workdir / "config.json").read_text())
  for key, value in model.items():
    assert config["model"][key] == value, key
  assert config["data"]["conditional"] == bool(model["num_classes"])

  summary = json.loads((workdir / "evaluation.json").read_text())
  assert summary["count"] == NUM_TEST
  assert 0 < summary["bits_per_dim"] < 16
  assert summary["stderr"] > 0

  if VARIANTS[name]["sample"]:
    with Image.open(workdir / "samples.png") as grid:
      assert grid.mode == "RGB"
      pixels = np.asarray(grid).astype(int)
    # Not grey: the channels differ somewhere.
    assert np.any(pixels[..., 0] != pixels[..., 1])


def test_corrupt_file_stops_training_with_a_clear_message(cli_runs):
  """No traceback; the message names the file and the way out."""
  returncode, output = cli_runs["corrupt"].result()
  assert returncode == 1, output[-3000:]
  assert "Traceback" not in output, output[-3000:]
  assert "Cannot decode" in output and "broken.png" in output
  assert "--skip_bad_files" in output
  assert not (cli_runs["root"] / "corrupt" / "checkpoints").exists()


def test_skip_bad_files_trains_without_the_corrupt_file(cli_runs):
  """The file is named in a warning, left out, and stays out at scoring."""
  results = cli_runs["colour"].result()
  _, train_output = results["train"]
  assert "Skipping" in train_output and "broken.png" in train_output
  config = json.loads(
      (cli_runs["root"] / "colour" / "config.json").read_text())
  assert config["data"]["skip_bad_files"] is True
  # evaluate.py reads the same folder, and would stop at the corrupt file
  # had the flag not reached it through config.json.
  returncode, output = results["evaluate"]
  assert returncode == 0, output[-3000:]
  assert f"images {NUM_TEST}" in output


def test_own_photos_are_scored_and_completed_by_a_grayscale_run(cli_runs):
  """evaluate --images and sample --complete on 20x16 colour photographs,
  with a model trained at 8x8 in grayscale: every photograph scored, and
  the completions keep the top half of each, as the run would read it."""
  results = cli_runs["grayscale"].result()
  workdir = cli_runs["root"] / "grayscale"
  for program in ("evaluate_own", "complete_own"):
    returncode, output = results[program]
    assert returncode == 0, f"{program} failed:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    assert f"Read {NUM_PHOTOS} images of shape (8, 8, 1)" in output

  summary = json.loads((workdir / "own_evaluation.json").read_text())
  assert summary["count"] == NUM_PHOTOS
  assert 0 < summary["bits_per_dim"] < 16

  completed = np.load(workdir / "completed.npz")["images"]
  assert completed.shape == (2, 8, 8, 1)
  photos = data.load_images(cli_runs["root"] / "photos", image_size=8,
                            grayscale=True)
  np.testing.assert_array_equal(completed[:, :4], photos[:2, :4])
  assert not np.array_equal(completed[:, 4:], photos[:2, 4:])

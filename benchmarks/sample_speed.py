"""Sampling speed: our reference and fast samplers against TFP's PixelCNN.

Times, at one matched configuration (by default 28x28x1 images, 32
filters, one residual block per stage, two stages, five logistic
components, dropout 0.5, float32), the seconds it takes to draw one batch
of images with

  * `model.sample(n, method="reference")`: one full network pass per
    pixel;
  * `model.sample(n, method="fast")`: the row-by-row cached sampler;
  * `tfp.distributions.PixelCNN(...).sample(n)`, inside a `tf.function`:
    one full network pass, and a draw at every pixel of the image, per
    pixel;

for batch sizes 1, 16 and 64, and prints them in one table with the
ratios reference/fast and TFP/fast: wall-clock seconds, and again the CPU
seconds of this process, which other work on a shared machine disturbs
less.

Every measurement follows a warm-up call at the same batch size, which
traces the `tf.function` and runs it once; the warm-up time is printed
separately and is not in the table. The warm-up calls of the slow samplers
draw a single pixel (TFP: one loop step) where they can, since tracing
does not depend on how many pixels are drawn.

The reference sampler and TFP take minutes per batch of 64. With
`--max_pixels_slow=N` (the default is 56, two rows) both are timed on N
pixels only, and on one pixel, and the time is extrapolated along the
line through the two to 784 pixels (TFP: 785 network passes, for the one
its sample makes before its loop). Both do the same work at every pixel
(a full network pass on the whole batch), so their cost is linear in the
number of pixels:

  * ours: `sample(n, method="reference", prefix=zeros,
    prefix_length=784 - N)` starts at the first unknown pixel and draws
    the last N;
  * TFP's: its `sample` has no such option, so N steps of its sampling
    loop are run in a `tf.function` written here, step for step as in
    `PixelCNN._sample_n`: the network on the whole batch
    (`dist.network`), a draw at every pixel (`dist._sample_channels`),
    and a scatter of the current pixel into the images.

The table marks extrapolated figures, and by default the script also times
both slow samplers in full at the smallest batch size, beside their
extrapolations, to show how well the scaling holds.

Usage:

  python benchmarks/sample_speed.py
  python benchmarks/sample_speed.py --max_pixels_slow=0   # all pixels

Note: on a machine shared with other work the wall-clock figures grow
with its load, which can change between one measurement and the next; the
load average is printed before and after. CPU seconds count the work done
by this process's threads (including any time they spin waiting for each
other), so they move less with the load, though they are not immune to
it.
"""

import collections
import os
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

# Quiet TensorFlow's C++ start-up messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top

import pixelcnnpp  # pylint: disable=g-import-not-at-top

import matched_config  # pylint: disable=g-import-not-at-top

SAMPLERS = ("reference", "fast", "tfp")

flags.DEFINE_list("batch_sizes", ["1", "16", "64"], "Images per sampling "
                  "call; one row of the table each.")
flags.DEFINE_integer("max_pixels_slow", 56, "Time the reference sampler "
                     "and TFP on only their first N pixels and scale the "
                     "time linearly to the whole image. 0, or the number "
                     "of pixels or more, times every pixel (a quarter of "
                     "an hour or more each at batch 64 on two busy "
                     "cores). At least 2, for the line through 1 and N.")
flags.DEFINE_bool("check_extrapolation", True, "With --max_pixels_slow, "
                  "also time the reference sampler and TFP on every pixel "
                  "at the smallest batch size, beside the extrapolation.")
flags.DEFINE_integer("repeats", 3, "Timed calls of the fast sampler per "
                     "batch size; the median is reported.")
flags.DEFINE_integer("slow_repeats", 1, "Timed calls of the reference "
                     "sampler and of TFP per batch size; the median is "
                     "reported.")
flags.DEFINE_multi_enum("samplers", list(SAMPLERS), SAMPLERS, "Samplers "
                        "to time; the ratios need the fast one.")
flags.DEFINE_list("image_shape", ["28", "28", "1"], "Height, width and "
                  "channels of the images.")
matched_config.define_network_flags()
# Listed by --help with this script's own flags.
flags.adopt_module_key_flags(matched_config)
flags.DEFINE_float("dropout_p", 0.5, "Dropout rate of both models (off "
                   "while sampling, in both).")
flags.DEFINE_integer("seed", 0, "Seed of the weights, of the images for "
                     "data-dependent initialisation, and of the draws.")

FLAGS = flags.FLAGS


def load_average():
  """The 1-minute load average, or None where the system has none."""
  try:
    return os.getloadavg()[0]
  except OSError:
    return None


def cpu_seconds():
  """User and system CPU time of this process so far, all threads."""
  return sum(os.times()[:2])


def timed(function):
  """Runs function(); returns float [2]: wall-clock and CPU seconds."""
  wall, cpu = time.perf_counter(), cpu_seconds()
  function()
  return np.array([time.perf_counter() - wall, cpu_seconds() - cpu])


def median_seconds(function, repeats):
  """Median over `repeats` calls of the wall-clock and CPU seconds, [2]."""
  return np.median([timed(function) for _ in range(repeats)], axis=0)


class Timing(collections.namedtuple(
    "Timing", ["warmup", "seconds", "extrapolated"])):
  """One sampler at one batch size.

  warmup: wall-clock seconds of the warm-up call.
  seconds: float [2], wall-clock and CPU seconds for a whole batch.
  extrapolated: whether `seconds` were scaled up from fewer pixels.
  """


def build_models(image_shape):
  """Our PixelCNN++ and TFP's, initialised on the same random images."""
  rng = np.random.default_rng(FLAGS.seed)
  init_images = rng.integers(0, 256, (16,) + image_shape, dtype=np.uint8)
  tf.random.set_seed(FLAGS.seed)

  model = pixelcnnpp.PixelCNNPlusPlus(
      image_shape, likelihood="mixture", num_filters=FLAGS.num_filters,
      num_resnet=FLAGS.num_resnet, num_hierarchies=FLAGS.num_hierarchies,
      num_logistic_mix=FLAGS.num_logistic_mix, dropout_p=FLAGS.dropout_p,
      seed=FLAGS.seed)
  model.initialize(init_images)

  # TFP's weight-normalised layers initialise from the data on their first
  # call.
  dist = tfp.distributions.PixelCNN(
      image_shape=image_shape, num_resnet=FLAGS.num_resnet,
      num_hierarchies=FLAGS.num_hierarchies, num_filters=FLAGS.num_filters,
      num_logistic_mix=FLAGS.num_logistic_mix, dropout_p=FLAGS.dropout_p)
  dist.log_prob(tf.cast(init_images, tf.float32), training=False)
  return model, dist


def tfp_loop_steps(dist, image_shape):
  """A tf.function running the first steps of TFP's sampling loop.

  Returns f(batch_size, num_steps) -> images [batch_size, H, W, C] in
  [-1, 1]: the steps of `PixelCNN._sample_n` for pixels 0 .. num_steps -
  1, each a network pass on the whole batch, a draw at every pixel, and
  an update of the current pixel.
  """
  height, width, channels = image_shape

  def step(index, samples):
    params = dist.network(samples, training=False)
    drawn = dist._sample_channels(*params)  # pylint: disable=protected-access
    # Pixel-major, as TFP does it, to scatter one pixel of every image.
    samples = tf.transpose(samples, [1, 2, 3, 0])
    drawn = tf.transpose(drawn, [1, 2, 3, 0])
    row, col = index // width, index % width
    samples = tf.tensor_scatter_nd_update(samples, [[row, col]],
                                          drawn[row, col][None])
    return index + 1, tf.transpose(samples, [3, 0, 1, 2])

  @tf.function
  def run(batch_size, num_steps):
    samples = tf.random.uniform([batch_size, height, width, channels], -1.0,
                                1.0)
    _, samples = tf.while_loop(lambda index, _: index < num_steps, step,
                               (tf.constant(0), samples),
                               parallel_iterations=1)
    return samples

  return run


class Timer:
  """The samplers at one batch size: warm-up and timed calls.

  Each `time_*` method returns a `Timing`.
  """

  def __init__(self, model, dist, batch_size, num_pixels):
    self.model = model
    self.dist = dist
    self.batch_size = batch_size
    self.num_pixels = num_pixels
    self.zeros = np.zeros((batch_size,) + model.image_shape, np.uint8)
    self._tfp_steps = None
    self._tfp_sample = None

  def time_fast(self):
    def call(seed):
      return self.model.sample(self.batch_size, seed=seed,
                               method="fast").numpy()
    warmup = timed(lambda: call(FLAGS.seed))[0]
    seconds = median_seconds(lambda: call(FLAGS.seed + 1), FLAGS.repeats)
    return Timing(warmup, seconds, False)

  def time_reference(self, max_pixels):
    """Draws the last `max_pixels` pixels; scaled to all of them."""
    def call(num_drawn):
      return self.model.sample(
          self.batch_size, seed=FLAGS.seed + 1, method="reference",
          prefix=self.zeros, prefix_length=self.num_pixels - num_drawn
      ).numpy()
    # The number of pixels drawn is an input of the traced sampler: one
    # pixel warms up the very function that is timed.
    warmup = timed(lambda: call(1))[0]
    return Timing(warmup, *self._extrapolate(call, max_pixels,
                                             self.num_pixels))

  def _extrapolate(self, call, max_pixels, total):
    """(seconds [2] of call(total), extrapolated), from call(max_pixels).

    Where max_pixels < total, from call(1) and call(max_pixels) along

    the straight line through the two, so that the cost of a call that
    does not grow with the pixels (checking inputs, starting the loop) is
    counted once, not total / max_pixels times.
    """
    seconds = median_seconds(lambda: call(max_pixels), FLAGS.slow_repeats)
    if max_pixels >= total:
      return seconds, False
    one = median_seconds(lambda: call(1), FLAGS.slow_repeats)
    per_pixel = np.maximum(seconds - one, 0.0) / (max_pixels - 1)
    return one + per_pixel * (total - 1), True

  def time_tfp(self, max_pixels):
    """TFP's own sample for every pixel; else its loop's first steps."""
    if max_pixels >= self.num_pixels:
      if self._tfp_sample is None:
        self._tfp_sample = tf.function(
            lambda: self.dist.sample(self.batch_size, seed=FLAGS.seed))
      warmup = timed(lambda: self._tfp_sample().numpy())[0]
      seconds = median_seconds(lambda: self._tfp_sample().numpy(),
                               FLAGS.slow_repeats)
      return Timing(warmup, seconds, False)

    if self._tfp_steps is None:
      self._tfp_steps = tfp_loop_steps(self.dist, self.model.image_shape)
    batch = tf.constant(self.batch_size)

    def call(num_steps):
      return self._tfp_steps(batch, tf.constant(num_steps)).numpy()

    warmup = timed(lambda: call(1))[0]
    # TFP's sample makes one pass before its loop: num_pixels + 1 in all.
    return Timing(warmup, *self._extrapolate(call, max_pixels,
                                             self.num_pixels + 1))


def format_seconds(seconds, extrapolated=False):
  if seconds is None:
    return "-"
  text = f"{seconds:.3g}" if seconds < 100 else f"{seconds:.0f}"
  return text + ("*" if extrapolated else "")


def ratio_of(results, batch_size, sampler, index):
  """Seconds of `sampler` over those of the fast sampler, or None.

  index: 0 for wall-clock seconds, 1 for CPU seconds.
  """
  if (batch_size, sampler) not in results or (
      (batch_size, "fast") not in results):
    return None
  return (results[batch_size, sampler].seconds[index]
          / results[batch_size, "fast"].seconds[index])


def format_ratio(results, batch_size, sampler, index):
  ratio = ratio_of(results, batch_size, sampler, index)
  return "-" if ratio is None else f"{ratio:.1f}x"


def print_table(title, header, rows):
  widths = [max(len(str(cell)) for cell in column)
            for column in zip(header, *rows)]
  print(title)
  for row in [header] + rows:
    print("  ".join(str(cell).rjust(width)
                    for cell, width in zip(row, widths)))
  print()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  image_shape = tuple(int(size) for size in FLAGS.image_shape)
  batch_sizes = [int(size) for size in FLAGS.batch_sizes]
  if len(image_shape) != 3 or min(image_shape) < 1:
    raise app.UsageError(f"--image_shape must be three positive sizes, "
                         f"not {FLAGS.image_shape}")
  if not batch_sizes or min(batch_sizes) < 1:
    raise app.UsageError(f"--batch_sizes must be positive, not "
                         f"{FLAGS.batch_sizes}")
  if FLAGS.max_pixels_slow < 0 or FLAGS.max_pixels_slow == 1:
    raise app.UsageError("--max_pixels_slow must be 0 (all pixels) or at "
                         "least 2")
  num_pixels = image_shape[0] * image_shape[1]
  max_pixels = FLAGS.max_pixels_slow or num_pixels
  max_pixels = min(max_pixels, num_pixels)
  samplers = [s for s in SAMPLERS if s in FLAGS.samplers]

  config = dict(image_shape=image_shape, num_filters=FLAGS.num_filters,
                num_resnet=FLAGS.num_resnet,
                num_hierarchies=FLAGS.num_hierarchies,
                num_logistic_mix=FLAGS.num_logistic_mix,
                dropout_p=FLAGS.dropout_p, dtype="float32")
  logging.info("configuration: %s; batch sizes %s; slow samplers timed on "
               "%d of %d pixels", config, batch_sizes, max_pixels,
               num_pixels)
  load_before = load_average()
  start = time.perf_counter()
  model, dist = build_models(image_shape)

  results = {}
  for batch_size in batch_sizes:
    timer = Timer(model, dist, batch_size, num_pixels)
    for sampler in samplers:
      if sampler == "fast":
        result = timer.time_fast()
      elif sampler == "reference":
        result = timer.time_reference(max_pixels)
      else:
        result = timer.time_tfp(max_pixels)
      results[batch_size, sampler] = result
      logging.info("batch %d, %s: warm-up %.2f s; %.3f s per batch, "
                   "%.3f CPU s%s", batch_size, sampler, result.warmup,
                   *result.seconds,
                   " (extrapolated)" if result.extrapolated else "")

  # The extrapolation beside a full measurement, at the smallest batch.
  checks = {}
  slow = [s for s in samplers if s != "fast"]
  if FLAGS.check_extrapolation and max_pixels < num_pixels and slow:
    timer = Timer(model, dist, min(batch_sizes), num_pixels)
    for sampler in slow:
      method = timer.time_reference if sampler == "reference" else (
          timer.time_tfp)
      checks[sampler] = method(num_pixels)
      logging.info("batch %d, %s, every pixel: warm-up %.2f s; %.3f s, "
                   "%.3f CPU s", timer.batch_size, sampler,
                   checks[sampler].warmup, *checks[sampler].seconds)
  elapsed = time.perf_counter() - start
  load_after = load_average()

  print()
  print(f"Sampling {'x'.join(map(str, image_shape))} images: "
        f"num_filters={FLAGS.num_filters}, num_resnet={FLAGS.num_resnet}, "
        f"num_hierarchies={FLAGS.num_hierarchies}, "
        f"num_logistic_mix={FLAGS.num_logistic_mix}, "
        f"dropout_p={FLAGS.dropout_p}, float32, "
        f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, "
        f"TFP {tfp.__version__}.")
  if load_before is not None and load_after is not None:
    print(f"Load average {load_before:.1f} before, {load_after:.1f} "
          f"after; ", end="")
  print(f"{elapsed / 60:.1f} minutes in all.")
  print()

  for index, title in enumerate([
      "Wall-clock seconds per batch (after a warm-up call):",
      "CPU seconds per batch (this process, all threads; less disturbed "
      "by other work on the machine):"]):
    rows = []
    for batch_size in batch_sizes:
      row = [batch_size]
      for sampler in samplers:
        result = results[batch_size, sampler]
        row.append(format_seconds(result.seconds[index],
                                  result.extrapolated))
      row += [format_ratio(results, batch_size, "reference", index),
              format_ratio(results, batch_size, "tfp", index)]
      rows.append(row)
    print_table(title, ["batch"] + samplers + ["reference/fast",
                                               "TFP/fast"], rows)

  if any(result.extrapolated for result in results.values()):
    print(f"* extrapolated to {num_pixels} pixels along the line through "
          f"the times of calls drawing 1 and {max_pixels} pixels. "
          f"Reference: it drew the last pixels after a prefix of zeros. "
          f"TFP: steps of its sampling loop, run by this script (a "
          f"network pass and a draw at every pixel each), extrapolated "
          f"to the {num_pixels + 1} passes of its sample. Fast: every "
          f"pixel, median of {FLAGS.repeats} calls.")
    print()

  rows = [[batch_size] + [format_seconds(results[batch_size, s].warmup)
                          for s in samplers]
          for batch_size in batch_sizes]
  print_table("Warm-up call, wall-clock seconds (tracing and one call; the "
              "reference sampler and TFP draw one pixel in it when "
              "extrapolated):", ["batch"] + samplers, rows)

  if checks:
    batch_size = min(batch_sizes)
    rows = []
    for sampler, check in checks.items():
      extrapolated = results[batch_size, sampler].seconds
      rows.append([sampler]
                  + [format_seconds(extrapolated[i], True) for i in (0, 1)]
                  + [format_seconds(check.seconds[i]) for i in (0, 1)]
                  + [f"{extrapolated[i] / check.seconds[i]:.2f}"
                     for i in (0, 1)])
    print_table(f"Extrapolation against every pixel timed, batch "
                f"{batch_size} (TFP: its own sample in a tf.function):",
                ["sampler", "extrapolated", "CPU", "every pixel", "CPU",
                 "ratio", "CPU ratio"], rows)

  if "fast" in samplers:
    for index, kind in enumerate(["wall-clock", "CPU"]):
      if "reference" in samplers and 16 in batch_sizes:
        ratio = ratio_of(results, 16, "reference", index)
        print(f"Target, {kind}: fast at least 20x faster than reference "
              f"at batch 16: {'met' if ratio >= 20 else 'NOT met'} "
              f"({ratio:.1f}x).")
      if "tfp" in samplers:
        ratios = {b: ratio_of(results, b, "tfp", index)
                  for b in batch_sizes}
        met = all(ratio > 1 for ratio in ratios.values())
        listed = ", ".join(f"batch {b}: {r:.1f}x"
                           for b, r in ratios.items())
        print(f"Target, {kind}: fast faster than TFP at every batch size: "
              f"{'met' if met else 'NOT met'} ({listed}).")


if __name__ == "__main__":
  app.run(main)

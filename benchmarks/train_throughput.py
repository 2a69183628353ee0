"""Training and evaluation throughput: pixelcnnpp against TFP's PixelCNN.

Times training steps of `pixelcnnpp.PixelCNNPlusPlus` and of
`tfp.distributions.PixelCNN` at one matched configuration (by default
28x28x1 images, 32 filters, one residual block per stage, two stages, five
logistic components, dropout 0.5, batch 32, Adam), then evaluation steps
(bits/dim in inference mode) of both, and prints a table:

  * images per second, for training and for evaluation, and the ratio of
    ours to TFP's; the median step time; the CPU time per step;
  * trainable parameters of each;
  * peak resident memory of each process, and its growth from just
    before the model was built;
  * the training loss, in bits/dim, at the first and the last timed step,
    so that a reader can see that real training was timed.

Both training steps compute the same thing: the mean over the batch of
-log p(x) in nats, with dropout on, differentiated with respect to every
trainable variable and applied by `tf_keras` Adam, all in one
`tf.function` without XLA. TFP's network keeps its causal masks as Keras
kernel constraints, which only the `tf_keras` optimizers apply, so both
models use that optimizer.

Each model lives in a process of its own, started with "spawn", so that
neither's memory or thread pools disturb the other's. The two processes
take turns: a round of `--round_steps` timed steps of one model while the
other waits, then a round of the other, so that a change of load on a
shared machine falls on both alike. Each model's first `--warmup_steps`
steps of each kind trace its functions and are not timed. The script
reports how much of the machine other processes used while steps were
timed; when that is more than a little, images per second are unreliable
and the CPU time per step is the steadier comparison.

Usage:

  python benchmarks/train_throughput.py
  python benchmarks/train_throughput.py --real_data --steps 60

Note: TFP's network uses larger kernels than ours (3x3 where ours are 2x3
and 2x2, 5x3 at the input) and holds part of each at zero with a mask, so
it has more trainable parameters, and does more arithmetic per image, for
about the same number of parameters that can move. The table gives both
counts.
"""

import math
import multiprocessing
import os
import pathlib
import resource
import sys
import time
import traceback

from absl import app
from absl import flags
import numpy as np

import matched_config  # Beside this script, on sys.path when it runs.

# Fewer of TensorFlow's C++ start-up messages, in the spawned processes
# too, which inherit the environment. TensorFlow itself is imported only
# inside the functions that the spawned processes run: the parent, which
# only schedules and prints, does without its start-up time and memory.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

MODELS = ("pixelcnnpp", "tfp")

flags.DEFINE_integer("steps", 30, "Timed training steps, and timed "
                     "evaluation steps, per model.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps run first, for each "
                     "model and for training and evaluation alike; the "
                     "first one traces the tf.function.")
flags.DEFINE_integer("batch_size", 32, "Images per step.")
flags.DEFINE_integer("round_steps", 5, "Timed steps of one model before "
                     "the other model's turn; the two alternate so that "
                     "changes of load on the machine fall on both.")
flags.DEFINE_bool("real_data", False, "Use MNIST images from --data_dir "
                  "(training images for the training steps, test images "
                  "for the evaluation steps) instead of uniform random "
                  "ones. Speed does not depend on the data; the loss "
                  "curve does.")
flags.DEFINE_string("data_dir", "../shared/data/mnist", "Directory with "
                    "the MNIST IDX files, for --real_data. A relative path "
                    "is looked up from the current directory, then from "
                    "the repository root.")
matched_config.define_network_flags()
# Listed by --help with this script's own flags.
flags.adopt_module_key_flags(matched_config)
flags.DEFINE_float("dropout_p", 0.5, "Dropout rate inside the residual "
                   "blocks, for both models.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_float("target_ratio", 1.3, "Training images/second of "
                   "pixelcnnpp over TFP's that counts as the target met.")
flags.DEFINE_multi_enum("models", list(MODELS), MODELS, "Models to time; "
                        "the ratio needs both.")
flags.DEFINE_integer("seed", 0, "Seed of the images, of pixelcnnpp's "
                     "weights and dropout masks, and of "
                     "tf_keras.utils.set_random_seed for TFP's network.")

FLAGS = flags.FLAGS

IMAGE_SHAPE = (28, 28, 1)
NUM_DIMS = int(np.prod(IMAGE_SHAPE))
MNIST_SIZES = {"train": 60000, "test": 10000}


def find_data_dir(data_dir):
  """The MNIST directory: `data_dir` as given, else under the repo root."""
  path = pathlib.Path(data_dir).expanduser()
  candidates = [path.resolve()]
  if not path.is_absolute():
    candidates.append((_REPO_ROOT / path).resolve())
  candidates = list(dict.fromkeys(candidates))
  for candidate in candidates:
    if (candidate / "train-images-idx3-ubyte.gz").exists():
      return candidate
  raise app.UsageError(
      f"--real_data needs the MNIST IDX files (train-images-idx3-ubyte.gz "
      f"and t10k-images-idx3-ubyte.gz); there are none in "
      f"{' or '.join(map(str, candidates))}. Point --data_dir at them, or "
      f"drop --real_data to time on random images.")


def make_batches(config):
  """Training and evaluation images, uint8 [N, B, 28, 28, 1] each.

  Returns (init, train, test): one batch for data-dependent
  initialisation, warmup + timed training batches, and warmup + timed
  evaluation batches. The same seed gives both models the same images.
  """
  rng = np.random.default_rng(config["seed"])
  batch = config["batch_size"]
  num_train = 1 + config["warmup_steps"] + config["steps"]
  num_test = config["warmup_steps"] + config["steps"]
  if config["data_dir"] is None:
    train = rng.integers(0, 256, (num_train * batch,) + IMAGE_SHAPE,
                         dtype=np.uint8)
    test = rng.integers(0, 256, (num_test * batch,) + IMAGE_SHAPE,
                        dtype=np.uint8)
  else:
    from pixelcnnpp import data  # pylint: disable=g-import-not-at-top
    directory = pathlib.Path(config["data_dir"])
    train = data.read_idx(directory / "train-images-idx3-ubyte.gz")
    test = data.read_idx(directory / "t10k-images-idx3-ubyte.gz")
    train = train[rng.permutation(len(train))[:num_train * batch], ..., None]
    test = test[rng.permutation(len(test))[:num_test * batch], ..., None]
  train = train.reshape((num_train, batch) + IMAGE_SHAPE)
  test = test.reshape((num_test, batch) + IMAGE_SHAPE)
  return train[0], train[1:], test


def current_rss_mib():
  """Resident memory of this process now, in MiB (Linux)."""
  with open("/proc/self/statm") as f:
    resident_pages = int(f.read().split()[1])
  return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib():
  """Largest resident memory this process has had, in MiB."""
  # ru_maxrss is in KiB on Linux, in bytes on macOS.
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def build_pixelcnnpp(config, init_images):
  """Our model, initialised on `init_images`.

  Returns:
    (variables, loss_fn, bits_per_dim_fn, input_dtype): `loss_fn(images)`
    is the batch mean of -log p(x) in nats with dropout on,
    `bits_per_dim_fn(images)` is bits/dim per image [B] with dropout off,
    and images are `input_dtype`, here uint8 0..255.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from pixelcnnpp import models  # pylint: disable=g-import-not-at-top

  model = models.PixelCNNPlusPlus(
      IMAGE_SHAPE, likelihood="mixture",
      num_filters=config["num_filters"], num_resnet=config["num_resnet"],
      num_hierarchies=config["num_hierarchies"],
      num_logistic_mix=config["num_logistic_mix"],
      dropout_p=config["dropout_p"], seed=config["seed"])
  model.initialize(init_images)

  def loss_fn(images):
    return -tf.reduce_mean(model.log_prob(images, training=True))

  def bits_per_dim_fn(images):
    return model.bits_per_dim(images)

  return model.trainable_variables, loss_fn, bits_per_dim_fn, np.uint8


def build_tfp(config, init_images):
  """TFP's PixelCNN, initialised on `init_images` (as for our model).

  TFP's weight-normalised layers run their data-dependent initialisation
  on the first call, so one log_prob call on the initialisation batch
  does it. Its log_prob takes pixel values as floats in [0, 255].

  Returns:
    As `build_pixelcnnpp`, with float32 images.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top

  dist = tfp.distributions.PixelCNN(
      image_shape=IMAGE_SHAPE, num_resnet=config["num_resnet"],
      num_hierarchies=config["num_hierarchies"],
      num_filters=config["num_filters"],
      num_logistic_mix=config["num_logistic_mix"],
      dropout_p=config["dropout_p"])
  dist.log_prob(tf.cast(init_images, tf.float32), training=False)

  def loss_fn(images):
    return -tf.reduce_mean(dist.log_prob(images, training=True))

  def bits_per_dim_fn(images):
    log_prob = dist.log_prob(images, training=False)
    return -log_prob / (NUM_DIMS * math.log(2.0))

  return dist.network.trainable_variables, loss_fn, bits_per_dim_fn, (
      np.float32)


class ModelRunner:
  """One model's step functions, images and measurements, in its process.

  Args:
    name: "pixelcnnpp" or "tfp".
    config: dict of plain values (see `main`).
  """

  def __init__(self, name, config):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tf_keras  # pylint: disable=g-import-not-at-top

    tf_keras.utils.set_random_seed(config["seed"])
    init_images, train_images, test_images = make_batches(config)
    build = {"pixelcnnpp": build_pixelcnnpp, "tfp": build_tfp}[name]

    # Memory before the model exists: TensorFlow's runtime and the images.
    tf.constant(0.0).numpy()
    self.rss_before = current_rss_mib()

    variables, loss_fn, bits_per_dim_fn, input_dtype = build(config,
                                                             init_images)
    self.variables = variables
    optimizer = tf_keras.optimizers.Adam(config["learning_rate"],
                                         jit_compile=False)

    @tf.function(jit_compile=False)
    def train_step(images):
      with tf.GradientTape() as tape:
        loss = loss_fn(images)
      gradients = tape.gradient(loss, variables)
      optimizer.apply_gradients(zip(gradients, variables))
      return loss

    @tf.function(jit_compile=False)
    def eval_step(images):
      return tf.reduce_mean(bits_per_dim_fn(images))

    def as_inputs(batches):
      return [tf.constant(b.astype(input_dtype)) for b in batches]

    self.steps = {"train": train_step, "eval": eval_step}
    self.batches = {"train": as_inputs(train_images),
                    "eval": as_inputs(test_images)}
    self.next_batch = {"train": 0, "eval": 0}

    # Warm-up: traces both functions; neither these steps nor their
    # outputs are reported.
    for kind in ("train", "eval"):
      self.run(kind, config["warmup_steps"])

  def run(self, kind, num_steps):
    """Runs the next `num_steps` steps of `kind` ("train" or "eval").

    Returns:
      (seconds, outputs, cpu_seconds): wall time of each step, its output
      (the loss in nats, or the mean bits/dim), and the CPU time that this
      process used over all of them.
    """
    seconds, outputs = [], []
    cpu_start = sum(os.times()[:2])
    for _ in range(num_steps):
      images = self.batches[kind][self.next_batch[kind]]
      self.next_batch[kind] += 1
      start = time.perf_counter()
      # Copying the output to the host waits for the step to finish.
      output = float(self.steps[kind](images).numpy())
      seconds.append(time.perf_counter() - start)
      outputs.append(output)
    return seconds, outputs, sum(os.times()[:2]) - cpu_start

  def summary(self):
    """Parameter counts and memory, MiB: peak, and growth from the build."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    num_free = 0
    for v in self.variables:
      # TFP's masks are kernel constraints that zero part of a kernel.
      constraint = getattr(v, "constraint", None)
      num_free += int(np.prod(v.shape)) if constraint is None else int(
          np.count_nonzero(constraint(tf.ones_like(v))))
    peak = peak_rss_mib()
    return {
        "num_params": sum(int(np.prod(v.shape)) for v in self.variables),
        "num_free_params": num_free,
        "peak_rss_mib": peak,
        "rss_growth_mib": peak - self.rss_before,
    }


def serve(name, config, connection):
  """Process body: builds a `ModelRunner`, then runs the commands it gets.

  A command is ("run", kind, num_steps) or ("summary",); each answer is
  ("ok", result) or ("error", traceback text).
  """
  try:
    runner = ModelRunner(name, config)
    connection.send(("ok", None))
    while True:
      try:
        command = connection.recv()
      except EOFError:  # The parent has gone, or given up on this run.
        return
      if command[0] == "run":
        connection.send(("ok", runner.run(*command[1:])))
      else:
        connection.send(("ok", runner.summary()))
        return
  except Exception:
    connection.send(("error", traceback.format_exc()))


class Worker:
  """Parent's handle on a model served in a spawned process."""

  def __init__(self, name, config):
    context = multiprocessing.get_context("spawn")
    self.name = name
    self.connection, child_end = context.Pipe()
    self.process = context.Process(target=serve,
                                   args=(name, config, child_end),
                                   name=f"benchmark-{name}", daemon=True)
    self.process.start()
    child_end.close()

  def call(self, *command):
    """Sends a command (or none) and returns the answer."""
    if command:
      self.connection.send(command)
    try:
      status, result = self.connection.recv()
    except EOFError:
      raise RuntimeError(f"the {self.name} process died (exit code "
                         f"{self.process.exitcode})") from None
    if status == "error":
      raise RuntimeError(f"the {self.name} process failed:\n{result}")
    return result

  def close(self):
    """Lets the process end (it does after "summary"), else ends it."""
    self.connection.close()
    self.process.join(timeout=10)
    if self.process.is_alive():
      self.process.terminate()


def busy_cpu_seconds():
  """CPU time used by every process on the machine so far (Linux)."""
  with open("/proc/stat") as f:
    fields = [int(v) for v in f.readline().split()[1:]]
  idle = fields[3] + fields[4]  # idle and iowait
  return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def interleaved_rounds(workers, kind, num_steps, round_steps):
  """Times `num_steps` steps of each worker, in alternating rounds.

  Rounds go A B, B A, A B, ... so that a change of load on the machine,
  which other users share, falls on every model alike.

  Returns:
    ({name: (seconds, outputs, cpu_seconds)}, wall time): each worker's
    step times and outputs, and the CPU time its process used for them.
  """
  timings = {w.name: ([], [], [0.0]) for w in workers}
  start = time.perf_counter()
  done = 0
  round_index = 0
  while done < num_steps:
    size = min(round_steps, num_steps - done)
    order = workers if round_index % 2 == 0 else workers[::-1]
    for worker in order:
      seconds, outputs, cpu = worker.call("run", kind, size)
      timings[worker.name][0].extend(seconds)
      timings[worker.name][1].extend(outputs)
      timings[worker.name][2][0] += cpu
    done += size
    round_index += 1
  return ({name: (seconds, outputs, cpu[0])
           for name, (seconds, outputs, cpu) in timings.items()},
          time.perf_counter() - start)


def measurements(timings, summary, batch_size):
  """One model's row values from its step timings and summary."""
  train_seconds, losses, train_cpu = timings["train"]
  eval_seconds, eval_bits, eval_cpu = timings["eval"]
  train_seconds, eval_seconds = np.array(train_seconds), np.array(
      eval_seconds)
  to_bits = 1.0 / (NUM_DIMS * math.log(2.0))
  return dict(
      summary,
      train_images_per_sec=batch_size * len(train_seconds)
      / train_seconds.sum(),
      train_ms_median=1e3 * np.median(train_seconds),
      train_cpu_ms=1e3 * train_cpu / len(train_seconds),
      eval_images_per_sec=batch_size * len(eval_seconds)
      / eval_seconds.sum(),
      eval_ms_median=1e3 * np.median(eval_seconds),
      eval_cpu_ms=1e3 * eval_cpu / len(eval_seconds),
      first_loss_bits=losses[0] * to_bits,
      last_loss_bits=losses[-1] * to_bits,
      eval_bits=np.mean(eval_bits))


def format_table(results):
  """The results as text, one row a measurement, one column a model."""
  names = list(results)
  both = len(names) == 2
  rows = [[""] + names + (["ours / tfp"] if both else [])]

  def row(label, key, fmt, ratio=True):
    values = [results[name][key] for name in names]
    cells = [label] + [format(v, fmt) for v in values]
    if both:
      cells.append(f"{values[0] / values[1]:.2f}x" if ratio else "")
    rows.append(cells)

  row("train images/s", "train_images_per_sec", ".1f")
  row("train step, median ms", "train_ms_median", ".1f")
  row("train step, CPU ms (all threads)", "train_cpu_ms", ".1f")
  row("eval images/s (bits/dim)", "eval_images_per_sec", ".1f")
  row("eval step, median ms", "eval_ms_median", ".1f")
  row("eval step, CPU ms (all threads)", "eval_cpu_ms", ".1f")
  row("trainable parameters", "num_params", ",d")
  row("  of them not held at zero by a mask", "num_free_params", ",d")
  row("peak RSS, MiB", "peak_rss_mib", ".0f")
  row("peak RSS growth, MiB", "rss_growth_mib", ".0f")
  row("train loss, first timed step, bits/dim", "first_loss_bits", ".3f",
      ratio=False)
  row("train loss, last timed step, bits/dim", "last_loss_bits", ".3f",
      ratio=False)
  row("eval loss, mean, bits/dim", "eval_bits", ".3f", ratio=False)

  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  lines = []
  for r in rows:
    cells = [r[0].ljust(widths[0])]
    cells += [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
    lines.append("  ".join(cells).rstrip())
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if min(FLAGS.steps, FLAGS.warmup_steps, FLAGS.batch_size,
         FLAGS.round_steps) < 1:
    raise app.UsageError("--steps, --warmup_steps, --round_steps and "
                         "--batch_size must each be at least 1 (the first "
                         "warm-up step traces the step function and must "
                         "not be timed)")
  if min(FLAGS.num_filters, FLAGS.num_resnet, FLAGS.num_hierarchies,
         FLAGS.num_logistic_mix) < 1 or not 0 <= FLAGS.dropout_p < 1:
    raise app.UsageError("--num_filters, --num_resnet, --num_hierarchies "
                         "and --num_logistic_mix must each be at least 1, "
                         "and --dropout_p in [0, 1)")

  needed = {"train": (1 + FLAGS.warmup_steps + FLAGS.steps)
                     * FLAGS.batch_size,
            "test": (FLAGS.warmup_steps + FLAGS.steps) * FLAGS.batch_size}
  if FLAGS.real_data and any(needed[k] > MNIST_SIZES[k] for k in needed):
    raise app.UsageError(
        f"--real_data uses each image once: this run needs {needed['train']} "
        f"training and {needed['test']} test images, MNIST has "
        f"{MNIST_SIZES['train']} and {MNIST_SIZES['test']}; lower --steps, "
        f"--warmup_steps or --batch_size")

  config = {
      "steps": FLAGS.steps,
      "warmup_steps": FLAGS.warmup_steps,
      "batch_size": FLAGS.batch_size,
      "data_dir": (str(find_data_dir(FLAGS.data_dir)) if FLAGS.real_data
                   else None),
      "num_filters": FLAGS.num_filters,
      "num_resnet": FLAGS.num_resnet,
      "num_hierarchies": FLAGS.num_hierarchies,
      "num_logistic_mix": FLAGS.num_logistic_mix,
      "dropout_p": FLAGS.dropout_p,
      "learning_rate": FLAGS.learning_rate,
      "seed": FLAGS.seed,
  }
  names = [name for name in MODELS if name in FLAGS.models]
  print("configuration: images 28x28x1 "
        + ("from MNIST" if FLAGS.real_data else "uniform random") + ", "
        + ", ".join(f"{k}={v}" for k, v in config.items() if v is not None)
        + f", round_steps={FLAGS.round_steps}, optimizer tf_keras Adam, "
        "no XLA", flush=True)

  start = time.perf_counter()
  workers = [Worker(name, config) for name in names]
  try:
    for worker in workers:
      worker.call()
    print(f"built, initialised and warmed up in "
          f"{time.perf_counter() - start:.0f} s", flush=True)

    timings = {name: {} for name in names}
    machine_busy = busy_cpu_seconds()
    wall = 0.0
    for kind in ("train", "eval"):
      kind_timings, seconds = interleaved_rounds(
          workers, kind, FLAGS.steps, FLAGS.round_steps)
      wall += seconds
      for name in names:
        timings[name][kind] = kind_timings[name]
    own_cpu = sum(t[kind][2] for t in timings.values()
                  for kind in ("train", "eval"))
    others = busy_cpu_seconds() - machine_busy - own_cpu
    results = {w.name: measurements(timings[w.name], w.call("summary"),
                                    FLAGS.batch_size) for w in workers}
  finally:
    for worker in workers:
      worker.close()

  print()
  print(format_table(results))
  print()
  share = max(others, 0.0) / (wall * os.cpu_count())
  busy = share > 0.1
  print(f"other processes used {100 * share:.0f}% of the machine's "
        f"{os.cpu_count()} cores while steps were timed"
        + ("; images/s are unreliable, run again on a quiet machine"
           if busy else ""))
  if len(results) == 2:
    ours, tfp = results["pixelcnnpp"], results["tfp"]
    ratio = ours["train_images_per_sec"] / tfp["train_images_per_sec"]
    met = "met" if ratio >= FLAGS.target_ratio else "NOT met"
    print(f"target: pixelcnnpp trains at >= {FLAGS.target_ratio:.2f}x "
          f"TFP's images/s; measured {ratio:.2f}x: {met}")
    if busy:
      print(f"  by CPU time per training step, which load disturbs "
            f"less, pixelcnnpp is "
            f"{tfp['train_cpu_ms'] / ours['train_cpu_ms']:.2f}x TFP")


if __name__ == "__main__":
  app.run(main)

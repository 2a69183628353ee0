"""Samplers: a reference one and a fast, cached one that agrees with it.

Both draw pixels in raster order, the channels of a pixel together (or in
order, where the head couples them), and pixel number p = i * W + j with
the stateless seed `fold_in(seed, p)`. Given the same seed, the same model
and the same parameters they therefore draw the same images.

  * `reference`: one full network pass per pixel.
  * `fast`: the network run one row at a time (`RowPass`). Every layer of
    these networks computes row i of its output from rows i and above of
    its input (at its own resolution), and a row of a downsampled stage
    depends only on full-size rows up to the first one it covers. So the
    rows above the current one are computed once, when they are complete,
    and kept: each layer caches the last input rows its kernel reaches up
    to. A new pixel then costs one row of each stage instead of a whole
    image: about H times less work. This is the idea of Ramachandran et
    al. (2017), "Fast Generation for Convolutional Autoregressive Models",
    at the granularity of rows rather than single positions.

For the pixel at column j the row pass computes only columns 0..j of the
current row (and the matching columns of the coarser stages), which is all
its parameters depend on: on average half a row per pixel.

Note: the columns left of j are still recomputed for every pixel of the
row; caching within the row as well (as in that paper) would save up to
another factor of W/2 in arithmetic, but on a CPU the per-operation
overhead of the smaller steps eats most of that gain at these image
sizes.
"""

import numpy as np
import tensorflow as tf

METHODS = ("fast", "reference")


class RowPass:
  """Runs the layers of a network on one row, the rows above from caches.

  Each layer call that reaches above its own row (a convolution with a
  kernel more than one row tall, or a down-shift) is a cache site,
  numbered in the order the network makes them. Site t keeps
  `caches[t]`, the last rows of its input at its resolution:
  [B, depth, W_level, C].

  Given `recorded`, the outputs of every layer call of an earlier pass over
  the same row, the pass reuses those that cannot have changed since: the
  vertical stream's (`layer.above_only`), and those that depend on the
  current row of no stage finer than `recompute_level + 1`. A row of stage
  s depends on the full-size rows up to the first one it covers, so the
  pixels of row i change the current row of stage s only where 2^s
  divides i.

  Given `columns` = n, the pass computes only the first n columns of the
  row, ceil(n / 2^s) at stage s: all that the parameters at column n - 1
  depend on. Layers that reach to the right (a kernel centred
  horizontally) see the cached rows above in full and zeros right of
  column n - 1 in the current row. In the networks here such layers either
  hold zero weights there (the masked convolutions) or feed only a
  down-shift, whose output in this row comes from the cache, so the
  columns computed equal those of a full-width pass.

  Args:
    row: int32 scalar, the full-size row i being computed.
    caches: the list of caches, or None to start them as zeros (the
      padding above the image).
    kernels: {id(layer): kernel} from `layer_kernels`, computed once
      outside the sampling loops.
    recorded: the `outputs` of an earlier full-width pass over row i, or
      None.
    columns: int32 scalar n, or None for the whole row; the input row
      holds n columns.
    recompute_level: with `recorded`, the coarsest stage whose current
      row is recomputed: the number of times 2 divides i, at most the
      network's coarsest stage.
  """

  def __init__(self, row, caches=None, kernels=None, recorded=None,
               columns=None, recompute_level=0):
    self.row = row
    self.caches = caches
    self.kernels = kernels or {}
    self.recorded = recorded
    self.columns = columns
    self.recompute_level = recompute_level
    self._widths = {}
    self.zero_caches = []
    self.outputs = []
    self._inputs = []
    self._levels = []

  def _cached_rows(self, x, depth, level):
    """Records x as cache site t's current row; returns site t's cache."""
    site = len(self._inputs)
    self._inputs.append(x)
    self._levels.append(level)
    if self.caches is None:
      self.zero_caches.append(tf.zeros_like(tf.repeat(x, depth, axis=1)))
      return self.zero_caches[-1]
    return self.caches[site]

  def _level_row(self, level):
    """Row index, at resolution stage `level`, of full-size row i."""
    return tf.bitwise.right_shift(self.row, level)

  def _width(self, level):
    """Columns computed at stage `level`: ceil(n / 2^level)."""
    if level not in self._widths:
      self._widths[level] = tf.bitwise.right_shift(
          self.columns + 2 ** level - 1, level)
    return self._widths[level]

  def _first_columns(self, x, level, extra=0):
    """x [B, h, W_level, C] cut to the columns computed, plus `extra`."""
    if self.columns is None:
      return x
    return tf.slice(x, [0, 0, 0, 0],
                    tf.stack([-1, -1, self._width(level) + extra, -1]))

  def _output(self, layer, level, coarsest_level, compute):
    """compute(), or its recorded value where it cannot have changed.

    `level` is the stage of the output, `coarsest_level` the coarsest
    stage the output depends on in the current row.
    """
    call = len(self.outputs)
    if self.recorded is None:
      output = compute()
    elif layer.above_only or coarsest_level > self.recompute_level:
      output = self._first_columns(self.recorded[call], level)
    else:
      output = compute()
    self.outputs.append(output)
    return output

  def _padded(self, layer, above, x):
    """The rows above and row x, padded horizontally for `layer`.

    Args:
      above: [B, kh - 1, W_level, C] cached rows, or None for kh = 1.
      x: [B, 1, w, C], the current row's computed columns.

    Returns:
      [B, kh, left + w + right, C].
    """
    _, (left, right) = layer.padding
    if right:
      x = tf.pad(x, [[0, 0], [0, 0], [0, right], [0, 0]])
    if above is not None:
      if right:
        above = tf.pad(above, [[0, 0], [0, 0], [0, right], [0, 0]])
      above = self._first_columns(above, layer.level, extra=right)
      x = tf.concat([above, x], axis=1)
    if left:
      x = tf.pad(x, [[0, 0], [0, 0], [left, 0], [0, 0]])
    return x

  def conv(self, layer, x):
    """x: [B, 1, w, C] the current row at the layer's input resolution."""
    height = layer.kernel_size[0]
    kernel = self.kernels.get(id(layer))
    if layer.strides == 1:
      above = None
      if height > 1:
        above = self._cached_rows(x, height - 1, layer.level)
      return self._output(layer, layer.level, layer.level, lambda: (
          layer.conv_padded(self._padded(layer, above, x), kernel=kernel)))

    # A stride-2 layer writes output row k from input rows 2k - 1 and 2k.
    # In the second input row of a cell (2k + 1) both are in the cache.
    if layer.strides != 2 or height != 2:
      raise NotImplementedError("row-by-row pass: only (2, w) kernels are "
                                "supported at stride 2")
    cache = self._cached_rows(x, 2, layer.level)

    def compute():
      odd = tf.equal(self._level_row(layer.level) % 2, 1)
      last = self._first_columns(cache[:, 1:], layer.level)
      rows = tf.where(odd, self._padded(layer, cache[:, :1], last),
                      self._padded(layer, cache[:, 1:], x))
      return layer.conv_padded(rows, kernel=kernel)

    return self._output(layer, layer.level + 1, layer.level + 1, compute)

  def deconv(self, layer, x, output_size):
    """Doubles the current row into two; keeps the one being computed."""
    level = layer.level - 1

    def compute():
      width = output_size[1]
      if self.columns is not None:
        width = self._width(level)
      pair = layer(x, (2, width), kernel=self.kernels.get(id(layer)))
      half = self._level_row(level) % 2
      return tf.gather(pair, [half], axis=1)

    return self._output(layer, level, layer.level, compute)

  def nin(self, layer, x):
    return self._output(layer, layer.level, layer.level, lambda: layer(
        x, kernel=self.kernels.get(id(layer))))

  def down_shift(self, x, level):
    return self._first_columns(self._cached_rows(x, 1, level), level)

  def dropout(self, x, rate):
    del rate  # Sampling runs the network in inference mode.
    return x

  def updated_caches(self):
    """Caches after this row, given the pass saw the row's final values.

    A cache at stage s takes its input's current row once the last
    full-size row of that row's cell is done: when (i + 1) % 2^s == 0.
    """
    updated = []
    for cache, x, level in zip(self.caches, self._inputs, self._levels):
      done = tf.equal((self.row + 1) % (2 ** level), 0)
      pushed = tf.concat([cache[:, 1:], x], axis=1)
      updated.append(tf.where(done, pushed, cache))
    return updated


def layer_kernels(network):
  """{id(layer): effective kernel} for every layer with a kernel."""
  return {id(layer): layer.kernel() for layer in network.submodules
          if hasattr(layer, "kernel")}


def _pixel_seed(seed, position):
  return tf.random.experimental.stateless_fold_in(seed, position)


def _reference(model, canvas, labels, seed, temperature, known):
  """One full pass per pixel. Returns (images, params [B, H, W, P])."""
  from pixelcnnpp import networks  # pylint: disable=g-import-not-at-top
  height, width, _ = model.image_shape
  batch = tf.shape(canvas)[0]
  params_all = tf.zeros(
      tf.stack([batch, height, width, model.head.num_params]), model.dtype)

  def draw(position, canvas, params_all):
    i, j = position // width, position % width
    params = model.network.forward(canvas, labels, networks.FullPass())
    pixel_params = params[:, i, j]
    values = model.head.sample(pixel_params, _pixel_seed(seed, position),
                               temperature)
    index = tf.stack([tf.range(batch), tf.fill([batch], i),
                      tf.fill([batch], j)], axis=1)
    canvas = tf.tensor_scatter_nd_update(canvas, index, values)
    params_all = tf.tensor_scatter_nd_update(params_all, index, pixel_params)
    return position + 1, canvas, params_all

  _, canvas, params_all = tf.while_loop(
      lambda position, *_: position < height * width, draw,
      (known, canvas, params_all))
  return canvas, params_all


def _fast(model, canvas, labels, seed, temperature, known):
  """Row-by-row pass with caches. Returns (images, params [B, H, W, P])."""
  network = model.network
  height, width, _ = model.image_shape
  batch = tf.shape(canvas)[0]

  # One pass over a row of zeros gives the cache shapes: zeros, as the
  # padding above the image.
  kernels = layer_kernels(network)
  num_levels = getattr(network, "num_hierarchies", 1)
  start = RowPass(tf.constant(0), caches=None)
  network.forward(canvas[:, :1], labels, start)
  caches = start.zero_caches

  def draw_row(i, rows, caches, params_all):
    row = tf.transpose(tf.gather(rows, [i]), [1, 0, 2, 3])
    row_params = tf.zeros(
        tf.stack([batch, width, model.head.num_params]), model.dtype)

    # A pass before any pixel of the row is drawn computes what the row's
    # pixels cannot change; the passes per pixel reuse it.
    before = RowPass(i, caches, kernels)
    network.forward(row, labels, before)

    def draw_pixels(recompute_level):
      """The loop over the row's pixels, for one `recompute_level`."""

      def draw(j, row, row_params):
        # Only the columns up to j: the parameters at j need no others.
        params = network.forward(
            row[:, :, :j + 1], labels,
            RowPass(i, caches, kernels, before.outputs, columns=j + 1,
                    recompute_level=recompute_level))
        pixel_params = params[:, 0, j]
        values = model.head.sample(pixel_params,
                                   _pixel_seed(seed, i * width + j),
                                   temperature)
        index = tf.stack([tf.range(batch), tf.zeros([batch], tf.int32),
                          tf.fill([batch], j)], axis=1)
        row_out = tf.tensor_scatter_nd_update(row, index, values)
        row_params = tf.tensor_scatter_nd_update(
            row_params, index[:, ::2], pixel_params)
        return j + 1, row_out, row_params

      def run():
        first = tf.clip_by_value(known - i * width, 0, width)
        _, row_out, params_out = tf.while_loop(
            lambda j, *_: j < width, draw, (first, row, row_params))
        return row_out, params_out

      return run

    # One loop per number of stages the row's pixels change, chosen once
    # per row: a choice per layer and pixel would cost more than the
    # layers themselves at these sizes.
    recompute_level = tf.constant(0)
    for level in range(1, num_levels):
      recompute_level += tf.cast(tf.equal(i % 2 ** level, 0), tf.int32)
    row, row_params = tf.switch_case(
        recompute_level, [draw_pixels(level) for level in range(num_levels)])

    # With the row complete, one more pass gives the final values of this
    # row's layer inputs, which the caches keep for the rows below.
    finished = RowPass(i, caches, kernels)
    network.forward(row, labels, finished)
    rows = tf.tensor_scatter_nd_update(rows, [[i]],
                                       tf.transpose(row, [1, 0, 2, 3]))
    params_all = tf.tensor_scatter_nd_update(params_all, [[i]],
                                             row_params[None])
    return i + 1, rows, finished.updated_caches(), params_all

  # Rows first, so that a finished row is written with one update.
  rows = tf.transpose(canvas, [1, 0, 2, 3])
  params_all = tf.zeros(
      tf.stack([height, batch, width, model.head.num_params]), model.dtype)
  _, rows, _, params_all = tf.while_loop(
      lambda i, *_: i < height, draw_row,
      (tf.constant(0), rows, caches, params_all))
  return (tf.transpose(rows, [1, 0, 2, 3]),
          tf.transpose(params_all, [1, 0, 2, 3]))


def sample(model, num, seed=0, temperature=1.0, labels=None, prefix=None,
           prefix_length=None, method="fast", return_params=False):
  """Draws `num` images from `model`.

  Args:
    model: an `AutoregressiveModel`.
    num: number of images.
    seed: int, or int32 [2] stateless seed. The same seed gives the same
      images, with either method.
    temperature: positive float. Divides the logits of the categorical
      choices and multiplies the logistic scales: near 0 every draw is
      deterministic given the context (the most likely softmax value; the
      bin of the most likely component's mean); 1 is the model itself.
    labels: for a class-conditional model, integers [num] (or a single
      integer for all) or one-hot [num, N].
    prefix: images [num, H, W, C] whose first `prefix_length` pixels in
      raster order are kept and the rest drawn (completion).
    prefix_length: pixels of `prefix` to keep; H * W keeps all of them.
      Defaults to the top half of the rows.
    method: "fast" (cached, row by row) or "reference" (a full pass per
      pixel).
    return_params: also return the parameters each pixel was drawn from.

  Returns:
    int32 [num, H, W, C] images in 0..255, and with `return_params` the
    parameters [num, H, W, P] (zeros at kept prefix pixels).
  """
  if method not in METHODS:
    raise ValueError(f"unknown sampling method {method!r}: choose one of "
                     f"{METHODS}")
  if not float(temperature) > 0:
    raise ValueError(f"temperature must be positive, not {temperature}")
  height, width, channels = model.image_shape
  if not isinstance(num, (int, np.integer)) or num < 1:
    raise ValueError(f"num must be a positive integer, not {num!r}")
  labels = model.one_hot_labels(labels, num)
  if labels is not None and labels.shape[0] != num:
    raise ValueError(f"got {labels.shape[0]} labels for num={num} images: "
                     f"pass one label per image, or a single label")
  if prefix is None and prefix_length is not None:
    raise ValueError("prefix_length needs prefix, the images to complete")
  if prefix is None:
    canvas = tf.zeros([num, height, width, channels], tf.int32)
    known = 0
  else:
    canvas = model.check_images(prefix)
    if canvas.shape[0] != num:
      raise ValueError(f"prefix holds {canvas.shape[0]} images; num is "
                       f"{num}")
    known = (height // 2) * width if prefix_length is None else prefix_length
    if not 0 <= known <= height * width:
      raise ValueError(f"prefix_length must be in 0..{height * width}, not "
                       f"{known}")
  if isinstance(seed, (int, np.integer)):
    seed = [int(seed), 0]
  seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
  if seed.shape != (2,):
    raise ValueError(f"seed must be an integer or a pair of integers, not "
                     f"shape {seed.shape}")

  function = _compiled(model, method)
  images, params = function(canvas, labels, seed,
                            tf.constant(temperature, model.dtype),
                            tf.constant(known, tf.int32))
  if return_params:
    return images, params
  return images


def _compiled(model, method):
  """The model's traced sampler, made once per model and method."""
  cache = model.__dict__.setdefault("_samplers", {})
  if method not in cache:
    body = _fast if method == "fast" else _reference

    def run(canvas, labels, seed, temperature, known):
      return body(model, canvas, labels, seed, temperature, known)

    cache[method] = tf.function(run, reduce_retracing=True)
  return cache[method]

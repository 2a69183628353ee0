"""Samplers: a reference one and a fast, cached one that agrees with it.

Both draw pixels in raster order, the channels of a pixel together (or in
order, where the head couples them), and pixel number p = i * W + j with
the stateless seed `fold_in(seed, p)`. Given the same seed, the same model
and the same parameters they therefore draw the same images.

  * `reference`: one full network pass per pixel.
  * `fast`: the network run with caches, in the way of Ramachandran et
    al. (2017), "Fast Generation for Convolutional Autoregressive Models".
    Every layer of these networks computes row i of its output from rows
    i and above of its input (at its own resolution), and a row of a
    downsampled stage depends only on full-size rows up to the first one
    it covers. So each layer's input rows above the current one are
    computed once, when complete, by a pass over the whole row
    (`RowPass`), and cached. Within the row, each pixel then costs one
    position of each layer (`PixelPass`): the columns to the left come
    from small caches of each layer's recent inputs, and what the row's
    pixels cannot change (the vertical stream, and the coarser stages'
    rows until their first full-size row) from a pass over the row before
    its first pixel is drawn. Per pixel that is about H * W times less
    arithmetic than a full pass; at small sizes on a CPU the number of
    operations per pixel, not their size, sets the time.
"""

import numpy as np
import tensorflow as tf

from pixelcnnpp import layers

METHODS = ("fast", "reference")


def _pad_rows(layer, above, x, width=None):
  """The rows above and row x, padded horizontally for `layer`.

  Layers that reach right (a kernel centred horizontally) see zeros right
  of x's last column; given `width`, the cached rows above show them
  their columns up to `width` + right (and zeros beyond the image).

  Args:
    layer: a convolution with `padding` ((top, 0), (left, right)).
    above: [B, kh - 1, W_level, C] cached rows, or None for kh = 1.
    x: [B, 1, w, C], the current row's first w columns.
    width: w as an int32 scalar when x is not the whole row, else None.

  Returns:
    [B, kh, left + w + right, C].
  """
  _, (left, right) = layer.padding
  if right:
    x = tf.pad(x, [[0, 0], [0, 0], [0, right], [0, 0]])
  if above is not None:
    if right:
      above = tf.pad(above, [[0, 0], [0, 0], [0, right], [0, 0]])
    if width is not None:
      above = tf.slice(above, [0, 0, 0, 0],
                       tf.stack([-1, -1, width + right, -1]))
    x = tf.concat([above, x], axis=1)
  if left:
    x = tf.pad(x, [[0, 0], [0, 0], [left, 0], [0, 0]])
  return x


class RowPass:
  """Runs the layers of a network on one row, the rows above from caches.

  Each layer call that reaches above its own row (a convolution with a
  kernel more than one row tall, or a down-shift) is a cache site,
  numbered in the order the network makes them. Site t keeps
  `caches[t]`, the last rows of its input at its resolution:
  [B, depth, W_level, C]. The output of every layer call is kept in
  `outputs`, in call order, for `PixelPass`.

  Args:
    row: int32 scalar, the full-size row i being computed.
    caches: the list of caches, or None to start them as zeros (the
      padding above the image).
    kernels: {id(layer): kernel} from `layer_kernels`, computed once
      outside the sampling loops.
  """

  def __init__(self, row, caches=None, kernels=None):
    self.row = row
    self.caches = caches
    self.kernels = kernels or {}
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

  def _output(self, output):
    self.outputs.append(output)
    return output

  def conv(self, layer, x):
    """x: [B, 1, W_level, C] the current row at the layer's resolution."""
    height = layer.kernel_size[0]
    kernel = self.kernels.get(id(layer))
    if layer.strides == 1:
      above = None
      if height > 1:
        above = self._cached_rows(x, height - 1, layer.level)
      return self._output(layer.conv_padded(_pad_rows(layer, above, x),
                                            kernel=kernel))

    # A stride-2 layer writes output row k from input rows 2k - 1 and 2k.
    # In the second input row of a cell (2k + 1) both are in the cache.
    if layer.strides != 2 or height != 2:
      raise NotImplementedError("row-by-row pass: only (2, w) kernels are "
                                "supported at stride 2")
    cache = self._cached_rows(x, 2, layer.level)
    odd = tf.equal(self._level_row(layer.level) % 2, 1)
    rows = tf.where(odd, _pad_rows(layer, cache[:, :1], cache[:, 1:]),
                    _pad_rows(layer, cache[:, 1:], x))
    return self._output(layer.conv_padded(rows, kernel=kernel))

  def deconv(self, layer, x, output_size):
    """Doubles the current row into two; keeps the one being computed."""
    pair = layer(x, (2, output_size[1]), kernel=self.kernels.get(id(layer)))
    half = self._level_row(layer.level - 1) % 2
    return self._output(tf.gather(pair, [half], axis=1))

  def turn(self, x):
    return x  # Row by row, nothing is turned.

  def nin(self, layer, x):
    return self._output(layer(x, kernel=self.kernels.get(id(layer))))

  def down_shift(self, x, level):
    return self._cached_rows(x, 1, level)

  def right_shift(self, x, level):
    del level
    return layers.right_shift(x)

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


class PixelPass:
  """Runs the layers of a network at one position, the rest from caches.

  At pixel (i, j) every layer computes only its output at column j (at
  stage s: column j >> s), from

    * the rows above, in the row caches of a `RowPass` (the same sites);
    * the columns to the left of its input in row i, in `windows`: each
      convolution that reaches left keeps the last columns of its input;
    * the outputs of a full-width `RowPass` over row i before any of its
      pixels was drawn (`recorded`), for every layer whose output the
      pixels of row i cannot change.

  The layers that `reads_image` (the first convolutions, before the
  streams are shifted) run on the row up to column j instead, because
  their outputs at earlier columns changed as those pixels were drawn.
  Those outputs reach the rest of the network only through a shift
  (`down_shift` takes the cache, `right_shift` column j - 1) or, for a
  type "A" masked convolution, at column j alone; right of column j they
  see zeros, which such a layer's masked weights or the shift after it
  ignore. Every value a window keeps was computed from pixels before its
  column, so it is final when kept.

  A row of stage s changes with the pixels of row i only where 2^s
  divides i (`row_level`, the coarsest such stage), and its column c,
  which depends on full-size columns up to 2^s c, only at the pixel
  j = 2^s c (`step_level`, the coarsest stage with a new column at j).
  A transposed convolution computed at such a pixel gives two columns of
  the finer stage; the second is kept in `buffers` for the next pixel.

  Args:
    row, column: int32 scalars i and j.
    caches: the row caches of the `RowPass` over the rows above.
    kernels: {id(layer): kernel} from `layer_kernels`.
    recorded: the `outputs` of a full-width `RowPass` over row i.
    windows, buffers: the state left by the pass at the previous pixel,
      or None to start them as zeros (the padding left of the image).
    row_level, step_level: Python ints, as above; step_level <=
      row_level.
  """

  def __init__(self, row, column, caches, kernels, recorded, windows=None,
               buffers=None, row_level=0, step_level=0):
    self.row = row
    self.column = column
    self.caches = caches
    self.kernels = kernels
    self.recorded = recorded
    self.windows = windows
    self.buffers = buffers
    self.row_level = row_level
    self.step_level = step_level
    self.new_windows = []
    self.new_buffers = []
    self.zero_windows = []
    self.zero_buffers = []
    self._num_sites = 0
    self._num_calls = 0

  def _column(self, level):
    return tf.bitwise.right_shift(self.column, level)

  def _next_site(self):
    self._num_sites += 1
    return self.caches[self._num_sites - 1]

  def _next_call(self):
    self._num_calls += 1
    return self._num_calls - 1

  def _at_column(self, x, column):
    """Column `column` of x [B, h, w, C], as [B, h, 1, C]."""
    return tf.slice(x, tf.stack([0, 0, column, 0]), [-1, -1, 1, -1])

  def _recorded(self, call, level):
    """Column j >> level of the recorded output of `call`."""
    return self._at_column(self.recorded[call], self._column(level))

  def _window(self, x, depth, update):
    """A site's input at its last `depth` columns and at this one.

    Returns [B, 1, depth + 1, C]: the kept columns of the previous pixels,
    then x. With `update`, the site keeps the last `depth` of them for
    the next pixel; else it keeps what it had.
    """
    site = len(self.new_windows)
    if self.windows is None:
      window = tf.zeros_like(tf.repeat(x, depth, axis=2))
      self.zero_windows.append(window)
    else:
      window = self.windows[site]
    current = tf.concat([window, x], axis=2)
    if update:
      kept = current[:, :, 1:]
      kept.set_shape(window.shape)
      self.new_windows.append(kept)
    else:
      self.new_windows.append(window)
    return current

  def _above(self, layer, cache, level):
    """The cached rows above over the kernel's columns at column j."""
    _, (left, right) = layer.padding
    cache = tf.pad(cache, [[0, 0], [0, 0], [left, right], [0, 0]])
    width = left + 1 + right
    return tf.slice(cache, tf.stack([0, 0, self._column(level), 0]),
                    [-1, -1, width, -1])

  def conv(self, layer, x):
    """x: the input at column j >> level, [B, 1, 1, C], or for a layer
    that `reads_image` the row up to column j, [B, 1, j + 1, C]."""
    height = layer.kernel_size[0]
    level = layer.level
    out_level = level + (1 if layer.strides == 2 else 0)
    if layer.strides not in (1, 2) or (layer.strides == 2 and height != 2):
      raise NotImplementedError("position-by-position pass: only stride 1 "
                                "and (2, w) kernels at stride 2")
    cache = self._next_site() if height > 1 or layer.strides == 2 else None
    call = self._next_call()
    kernel = self.kernels.get(id(layer))
    _, (left, right) = layer.padding

    if layer.reads_image:
      # The row up to column j, for the layers that see the current pixel.
      rows = _pad_rows(layer, cache, x, width=self.column + 1)
      output = layer.conv_padded(rows, kernel=kernel)
      if getattr(layer, "mask_type", None) == "A":
        # Column j sees only pixels left of j: the rest of the network
        # takes it alone.
        output = self._at_column(output, self.column)
      return output

    runs = level <= self.step_level and not layer.above_only
    current = self._window(x, left, runs) if left else x
    if layer.above_only or out_level > self.step_level:
      # Unchanged by this row, or not needed at this pixel.
      return self._recorded(call, out_level)

    if right:
      current = tf.pad(current, [[0, 0], [0, 0], [0, right], [0, 0]])
    if layer.strides == 2:
      # Output row k of a stride-2 layer reads input rows 2k - 1 and 2k;
      # it is computed only in row 2k, so row 2k - 1 is the cache's last.
      cache = cache[:, 1:]
    rows = current
    if cache is not None:
      rows = tf.concat([self._above(layer, cache, level), current], axis=1)
    return layer.conv_padded(rows, kernel=kernel)

  def deconv(self, layer, x, output_size):
    """Column j >> (s - 1) of a transposed convolution from stage s."""
    del output_size
    level = layer.level
    call = self._next_call()
    if layer.above_only:
      return self._recorded(call, level - 1)
    if not layer.right_shifted:
      raise NotImplementedError("position-by-position pass: a centred "
                                "transposed convolution must be above_only")
    site = len(self.new_buffers)
    if level > self.row_level:
      self.new_buffers.append(self.buffers[site])
      return self._recorded(call, level - 1)
    if level > self.step_level:
      # The second column of the pair made at the previous pixel.
      self.new_buffers.append(self.buffers[site])
      return self.buffers[site]

    pair = layer(x, (2, 2), kernel=self.kernels.get(id(layer)))
    half = tf.bitwise.right_shift(self.row, level - 1) % 2
    pair = tf.gather(pair, [half], axis=1)
    self.new_buffers.append(pair[:, :, 1:])
    if self.buffers is None:
      self.zero_buffers.append(tf.zeros_like(pair[:, :, 1:]))
    return pair[:, :, :1]

  def turn(self, x):
    return x  # Row by row, nothing is turned.

  def nin(self, layer, x):
    call = self._next_call()
    if layer.above_only or layer.level > self.step_level:
      return self._recorded(call, layer.level)
    return layer(x, kernel=self.kernels.get(id(layer)))

  def down_shift(self, x, level):
    del x  # The current row is not seen; the cache holds the row above.
    return self._at_column(self._next_site(), self._column(level))

  def right_shift(self, x, level):
    """Column j - 1 of x, the output of a layer that `reads_image`."""
    if level:
      raise NotImplementedError("position-by-position pass: right_shift "
                                "only at full size")
    return self._at_column(tf.pad(x, [[0, 0], [0, 0], [1, 0], [0, 0]]),
                            self.column)

  def dropout(self, x, rate):
    del rate  # Sampling runs the network in inference mode.
    return x


def layer_kernels(network):
  """{id(layer): effective kernel} for every layer with a kernel."""
  return {id(layer): layer.kernel() for layer in network.submodules
          if hasattr(layer, "kernel")}


def _report_row(model, position, width):
  """Calls the model's row callback, if any, when `position` ends a row.

  The callback, set by `sample(progress=...)` for the length of one call,
  gets the number of rows finished.
  """

  def report(position):
    callback = model.__dict__.get("_sample_progress")
    position = int(position)
    if callback is not None and (position + 1) % width == 0:
      callback((position + 1) // width)

  tf.py_function(report, [position], [])


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
    with tf.control_dependencies([canvas]):
      _report_row(model, position, width)
    return position + 1, canvas, params_all

  _, canvas, params_all = tf.while_loop(
      lambda position, *_: position < height * width, draw,
      (known, canvas, params_all))
  return canvas, params_all


def _fast(model, canvas, labels, seed, temperature, known):
  """Cached passes row by row and position by position.

  Returns (images, params [B, H, W, P]).
  """
  network = model.network
  height, width, _ = model.image_shape
  batch = tf.shape(canvas)[0]
  num_levels = getattr(network, "num_hierarchies", 1)

  # Passes over a row of zeros and at its first position give the shapes
  # of the caches: zeros, as the padding above and left of the image.
  kernels = layer_kernels(network)
  start = RowPass(tf.constant(0), caches=None)
  network.forward(canvas[:, :1], labels, start)
  caches = start.zero_caches
  first = PixelPass(tf.constant(0), tf.constant(0), caches, kernels,
                    start.outputs, row_level=num_levels - 1,
                    step_level=num_levels - 1)
  network.forward(canvas[:, :1, :1], labels, first)
  zero_windows, zero_buffers = first.zero_windows, first.zero_buffers

  def draw_row(i, rows, caches, params_all):
    row = tf.transpose(tf.gather(rows, [i]), [1, 0, 2, 3])
    row_params = tf.zeros(
        tf.stack([batch, width, model.head.num_params]), model.dtype)

    # A pass before any pixel of the row is drawn computes what the row's
    # pixels cannot change; the passes per pixel reuse it.
    before = RowPass(i, caches, kernels)
    network.forward(row, labels, before)

    def draw_pixel(row_level, step_level):
      """Draws pixel j of row i, for one pair of levels."""

      def draw(j, row, row_params, windows, buffers):
        pixel = PixelPass(i, j, caches, kernels, before.outputs, windows,
                          buffers, row_level, step_level)
        params = network.forward(row[:, :, :j + 1], labels, pixel)
        pixel_params = params[:, 0, 0]
        values = model.head.sample(pixel_params,
                                   _pixel_seed(seed, i * width + j),
                                   temperature)
        # A known pixel of a completion keeps its value, and its
        # parameters are left at zero, as the reference sampler leaves
        # them.
        known_pixel = i * width + j < known
        values = tf.where(known_pixel, row[:, 0, j], values)
        pixel_params = tf.where(known_pixel, tf.zeros_like(pixel_params),
                                pixel_params)
        index = tf.stack([tf.range(batch), tf.zeros([batch], tf.int32),
                          tf.fill([batch], j)], axis=1)
        row = tf.tensor_scatter_nd_update(row, index, values)
        row_params = tf.tensor_scatter_nd_update(
            row_params, index[:, ::2], pixel_params)
        return row, row_params, pixel.new_windows, pixel.new_buffers

      return draw

    def draw_pixels(row_level):
      """The loop over the row's pixels, for one `row_level`."""
      variants = [draw_pixel(row_level, level)
                  for level in range(row_level + 1)]

      def body(j, *state):
        if row_level == 0:
          return (j + 1,) + variants[0](j, *state)
        # The coarsest stage with a new column at pixel j.
        step_level = tf.constant(0)
        for level in range(1, row_level + 1):
          step_level += tf.cast(tf.equal(j % 2 ** level, 0), tf.int32)
        return (j + 1,) + tuple(tf.switch_case(
            step_level, [lambda v=v: v(j, *state) for v in variants]))

      def run():
        # The loop runs over a completion's known pixels too: the windows
        # need their columns.
        _, row_out, params_out, _, _ = tf.while_loop(
            lambda j, *_: j < width, body,
            (tf.constant(0), row, row_params, zero_windows, zero_buffers))
        return row_out, params_out

      return run

    # Stage s's row changes with the pixels of row i where 2^s divides i.
    row_level = tf.constant(0)
    for level in range(1, num_levels):
      row_level += tf.cast(tf.equal(i % 2 ** level, 0), tf.int32)
    row, row_params = tf.cond(
        known >= (i + 1) * width, lambda: (row, row_params),
        lambda: tf.switch_case(
            row_level, [draw_pixels(level) for level in range(num_levels)]))

    # With the row complete, one more pass gives the final values of this
    # row's layer inputs, which the caches keep for the rows below.
    finished = RowPass(i, caches, kernels)
    network.forward(row, labels, finished)
    rows = tf.tensor_scatter_nd_update(rows, [[i]],
                                       tf.transpose(row, [1, 0, 2, 3]))
    params_all = tf.tensor_scatter_nd_update(params_all, [[i]],
                                             row_params[None])
    with tf.control_dependencies([rows]):
      _report_row(model, (i + 1) * width - 1, width)
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
           prefix_length=None, method="fast", return_params=False,
           progress=None):
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
    progress: None, or a function called with the number of rows
      finished each time a row of drawn pixels is (the fast sampler also
      reports the rows of a completion's prefix, which it passes through).

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
  # One label per image, or one for all, checked there.
  labels = model.one_hot_labels(labels, num)
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
  given, seed = seed, tf.convert_to_tensor(seed)
  if not seed.dtype.is_integer:
    raise ValueError(f"seed must be an integer or a pair of integers, not "
                     f"{seed.dtype.name} {given!r}")
  seed = tf.cast(seed, tf.int32)
  if seed.shape != (2,):
    raise ValueError(f"seed must be an integer or a pair of integers, not "
                     f"shape {seed.shape}")

  function = _compiled(model, method)
  model.__dict__["_sample_progress"] = progress
  try:
    images, params = function(canvas, labels, seed,
                              tf.constant(temperature, model.dtype),
                              tf.constant(known, tf.int32))
  finally:
    model.__dict__["_sample_progress"] = None
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

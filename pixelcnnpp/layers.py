"""Layers of autoregressive image networks, reusable on their own.

All layers are `tf.Module`s that create their variables at construction
(the number of input channels is an argument), work on NHWC tensors and
accept a `dtype` so that a whole network can run in float64 for exact
checks. Convolutions are weight-normalised (Salimans and Kingma, 2016)
unless built with `weight_norm=False`; their data-dependent initialisation
runs when a layer is called with `init=True`, which also works inside
`tf.function` because it only assigns to existing variables.

The shifted convolutions of PixelCNN++ pad the input so that the output at
(i, j) sees only rows above i (`DownShiftedConv2D`), or rows above i and
columns left of j in row i (`DownRightShiftedConv2D`), and they keep the
spatial size. Calling a convolution pads its input with zeros and runs a
"valid" convolution (`conv_padded`); the fast sampler calls `conv_padded`
itself, on a row whose padding above is rows it has cached.

Each convolution also runs on images turned by 180 degrees (`turned`,
with `turn` and the `turned=True` shifts). There the causal padding lies
below and to the right, which is where "SAME" padding puts it for the
stride-1 shifted kernels: the convolution pads internally, and no padded
copy of its input is made on the way forward nor sliced out of its
gradient on the way back. The whole-image pass of the networks works that
way; it is the same function, to rounding.
"""

import tensorflow as tf


def concat_elu(x):
  """ELU of x and of -x, concatenated on the channel axis (doubles C)."""
  return tf.nn.elu(tf.concat([x, -x], axis=-1))


def _size(x, axis):
  """Static size of an axis where known, else the dynamic one."""
  return x.shape[axis] if x.shape[axis] is not None else tf.shape(x)[axis]


def turn(x):
  """Turns [B, H, W, C] by 180 degrees in the image plane; its own inverse."""
  return tf.reverse(x, [1, 2])


def _shift(x, axis, turned):
  """Moves x one step along `axis` (1 or 2), filling the gap with zeros.

  The image moves down or right; when x is turned, that is up or left.
  """
  # tf.slice rather than x[:, :-1]: the gradient of a strided slice costs
  # several times more, and these shifts run on full-size tensors.
  begin = [0, 0, 0, 0]
  size = [-1, -1, -1, -1]
  size[axis] = _size(x, axis) - 1
  padding = [[0, 0], [0, 0], [0, 0], [0, 0]]
  if turned:
    begin[axis] = 1
    padding[axis] = [0, 1]
  else:
    padding[axis] = [1, 0]
  return tf.pad(tf.slice(x, begin, size), padding)


def down_shift(x, turned=False):
  """Shifts [B, H, W, C] down one row; the top row becomes zeros.

  With `turned=True`, x is an image turned by 180 degrees (see `turn`),
  and the image it shows is shifted down.
  """
  return _shift(x, 1, turned)


def right_shift(x, turned=False):
  """Shifts [B, H, W, C] right one column; the left column becomes zeros.

  `turned` as for `down_shift`.
  """
  return _shift(x, 2, turned)


def _turned_padding(length, kernel, stride, before, after):
  """Padding of one axis for the same convolution on a turned input.

  A "valid" convolution of an input of `length` padded by (`before`,
  `after`) sees, at its output o, input positions stride * o - before on.
  On the input turned around, the same windows in reverse order need the
  padding returned here; an entry may be negative, which means cropping
  (for instance the row that a stride-2 layer never reads).
  """
  outputs = (length + before + after - kernel) // stride + 1
  needed = stride * (outputs - 1) + kernel
  turned_before = needed - length - before
  return turned_before, needed - length - turned_before


def _pad_or_crop(x, padding):
  """Pads x by `padding` ((top, bottom), (left, right)); negative crops."""
  begin, size, pads = [0, 0, 0, 0], [-1, -1, -1, -1], [[0, 0]] * 4
  for axis, (before, after) in zip((1, 2), padding):
    crop_before, crop_after = max(-before, 0), max(-after, 0)
    if crop_before or crop_after:
      begin[axis] = crop_before
      size[axis] = _size(x, axis) - crop_before - crop_after
    pads[axis] = [max(before, 0), max(after, 0)]
  if begin != [0, 0, 0, 0] or size != [-1, -1, -1, -1]:
    x = tf.slice(x, begin, size)
  if any(p != [0, 0] for p in pads):
    x = tf.pad(x, pads)
  return x


def check_dropout_rate(rate, name="rate"):
  """Raises ValueError unless `dropout` can drop at `rate`.

  The rate must lie in [0, 1) and not round to 1 in steps of 1/256.
  """
  if not 0.0 <= rate < 1.0 or round(rate * 256) >= 256:
    raise ValueError(f"{name} must be in [0, 1) and at most 0.998 (dropout "
                     f"works in steps of 1/256), not {rate}")


def dropout(x, rate, seed):
  """Stateless dropout; the mask depends only on `seed` and x's shape.

  Each kept unit is scaled by 1 / (1 - rate). A unit's fate takes as few
  random bits as the rate needs: one for 0.5 (so 32 units per 32-bit
  random word), two for 0.25 or 0.75, four for multiples of 1/16, eight
  otherwise. Drawing the random words is the costly part, so a rate of
  0.5 drops units several times faster than drawing a float per unit.

  Note: the rate is rounded to a multiple of 1/256 (0.5 exactly, 0.1 as
  26/256); the scale uses the rounded rate, so the expectation is kept.

  Args:
    x: float tensor.
    rate: drop probability in [0, 1).
    seed: int32 [2].
  """
  check_dropout_rate(rate)
  threshold = round(rate * 256)
  if threshold == 0:
    return x
  bits = next(b for b in (1, 2, 4, 8) if threshold * 2 ** b % 256 == 0)
  fields = 8 // bits  # Units per random byte.
  size = tf.size(x)
  num_bytes = (size + fields - 1) // fields
  words = tf.random.stateless_uniform([(num_bytes + 3) // 4], seed,
                                      dtype=tf.uint32, minval=None,
                                      maxval=None)
  random_bytes = tf.slice(tf.reshape(tf.bitcast(words, tf.uint8), [-1]),
                          [0], [num_bytes])
  # Field j of every byte, kept where its value reaches the threshold;
  # [fields, num_bytes], broadcast along the outer axis, which is cheap.
  field_masks, limits = [], []
  for j in range(fields):
    field_masks.append((2 ** bits - 1) << (bits * j))
    limits.append((threshold * 2 ** bits // 256) << (bits * j))
  keep = tf.bitwise.bitwise_and(
      random_bytes[None, :], tf.constant(field_masks, tf.uint8)[:, None]
  ) >= tf.constant(limits, tf.uint8)[:, None]
  keep = tf.reshape(tf.slice(tf.reshape(keep, [-1]), [0], [size]),
                    tf.shape(x))
  # A multiplication by the scaled mask: its gradient is one more, where
  # tf.where would select twice on the way back.
  scale = tf.constant(256 / (256 - threshold), x.dtype)
  return x * (tf.cast(keep, x.dtype) * scale)


def _create_variables(layer, shape, filters, dtype):
  """Gives `layer` its direction v of `shape`, gain g and bias b.

  v starts as small random normals; g (only where `layer.weight_norm`)
  as ones and b as zeros, per output channel, until data-dependent
  initialisation sets them.
  """
  layer.v = tf.Variable(
      tf.random.normal(shape, stddev=0.05, dtype=dtype), name="v")
  if layer.weight_norm:
    layer.g = tf.Variable(tf.ones([filters], dtype), name="g")
  layer.b = tf.Variable(tf.zeros([filters], dtype), name="b")


def _initialize_gain_and_bias(layer, y):
  """Data-dependent initialisation of a weight-normalised layer.

  Sets `layer.g` and `layer.b` so that the outputs `y` (computed with the
  unit-norm direction) get zero mean and standard deviation
  `layer.init_scale` per output channel, over every other axis.

  Returns:
    The outputs with the new gain and bias applied.
  """
  axes = list(range(len(y.shape) - 1))
  mean, variance = tf.nn.moments(y, axes=axes)
  scale = layer.init_scale / tf.sqrt(variance + 1e-10)
  layer.g.assign(scale)
  layer.b.assign(-mean * scale)
  return (y - mean) * scale


class WeightNormConv2D(tf.Module):
  """2-D convolution, weight-normalised, with explicit padding.

  The kernel is `g * v / ||v||`, the norm taken over every axis but the
  output channel. With `weight_norm=False` the kernel is a plain variable
  and `init=True` does nothing.

  Args:
    in_channels: input channels C_in.
    filters: output channels C_out.
    kernel_size: (kh, kw).
    strides: int, the same stride on both axes.
    padding: ((top, bottom), (left, right)) zeros added before a "valid"
      convolution.
    weight_norm: bool.
    init_scale: the output standard deviation that data-dependent
      initialisation aims for.
    dtype: float dtype of the variables and of the computation.
  """

  def __init__(self, in_channels, filters, kernel_size, strides=1,
               padding=((0, 0), (0, 0)), weight_norm=True, init_scale=1.0,
               dtype=tf.float32, name=None):
    super().__init__(name=name)
    self.in_channels = in_channels
    self.filters = filters
    self.kernel_size = tuple(kernel_size)
    self.strides = strides
    self.padding = tuple(tuple(p) for p in padding)
    self.weight_norm = weight_norm
    self.init_scale = init_scale
    _create_variables(
        self, self.kernel_size + (in_channels, filters), filters, dtype)

  def direction(self):
    """The kernel scaled to unit norm per output channel, before the gain."""
    return tf.nn.l2_normalize(self.v, axis=[0, 1, 2])

  def kernel(self):
    """The effective kernel [kh, kw, C_in, C_out]."""
    if not self.weight_norm:
      return self.v
    return self.g * self.direction()

  def conv_padded(self, x, init=False, kernel=None):
    """Convolves input that already carries its padding on both axes.

    Args:
      x: [B, H_in + top + bottom, W_in + left + right, C_in].
      init: run data-dependent initialisation on this batch first.
      kernel: `self.kernel()` computed beforehand, to save recomputing it
        in a loop; None computes it.

    Returns:
      [B, H_out, W_out, C_out].
    """
    if init and self.weight_norm:
      return self._initialize(x)
    if kernel is None:
      kernel = self.kernel()
    # Explicit padding in tf.nn.conv2d would spare the pad, but takes a
    # path that is slower on the CPU than a pad and a "valid" convolution.
    # Under mixed precision x is 16-bit and the variables float32.
    y = tf.nn.conv2d(x, tf.cast(kernel, x.dtype), self.strides, "VALID")
    return tf.nn.bias_add(y, tf.cast(self.b, y.dtype))

  def __call__(self, x, init=False, kernel=None):
    """[B, H, W, C_in] -> [B, H_out, W_out, C_out]."""
    # One pad on both axes: padding in two steps would copy the input, and
    # slice its gradient, twice.
    (top, bottom), (left, right) = self.padding
    x = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])
    return self.conv_padded(x, init, kernel)

  def turned(self, x, init=False):
    """This convolution on an image turned by 180 degrees.

    For x = turn(z), returns turn(self(z)), to rounding. The kernel turns
    with the image, and so does the padding: what was above and to the
    left now lies below and to the right.

    Args:
      x: [B, H, W, C_in], turned.
      init: run data-dependent initialisation on this batch first.

    Returns:
      [B, H_out, W_out, C_out], turned.
    """
    (top, bottom), (left, right) = self.padding
    kh, kw = self.kernel_size
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
      # The padding depends on the size; unknown, turn back and forth.
      return turn(self(turn(x), init))
    padding = (_turned_padding(height, kh, self.strides, top, bottom),
               _turned_padding(width, kw, self.strides, left, right))
    same = ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)
    if self.strides == 1 and padding == same:
      padded, mode = x, "SAME"
    else:
      padded, mode = _pad_or_crop(x, padding), "VALID"
    kernel = self.direction() if init and self.weight_norm else self.kernel()
    y = tf.nn.conv2d(padded, tf.cast(tf.reverse(kernel, [0, 1]), x.dtype),
                     self.strides, mode)
    if init and self.weight_norm:
      return _initialize_gain_and_bias(self, y)
    return tf.nn.bias_add(y, tf.cast(self.b, y.dtype))

  def _initialize(self, x):
    y = tf.nn.conv2d(x, self.direction(), self.strides, "VALID")
    return _initialize_gain_and_bias(self, y)


class DownShiftedConv2D(WeightNormConv2D):
  """Convolution whose output at (i, j) sees input rows up to i only.

  With the default (2, 3) kernel and a later `down_shift`, the vertical
  stream of PixelCNN++ sees only the rows above each pixel. A stride of 2
  halves the size (rounding up) and keeps the same property per cell.
  """

  def __init__(self, in_channels, filters, kernel_size=(2, 3), strides=1,
               **kwargs):
    kh, kw = kernel_size
    padding = ((kh - 1, 0), ((kw - 1) // 2, (kw - 1) // 2))
    super().__init__(in_channels, filters, kernel_size, strides, padding,
                     **kwargs)


class DownRightShiftedConv2D(WeightNormConv2D):
  """Convolution whose output at (i, j) sees rows up to i, columns up to j.

  The horizontal stream of PixelCNN++ is built from these with the default
  (2, 2) kernel: nothing below or to the right of a pixel reaches it.
  """

  def __init__(self, in_channels, filters, kernel_size=(2, 2), strides=1,
               **kwargs):
    kh, kw = kernel_size
    padding = ((kh - 1, 0), (kw - 1, 0))
    super().__init__(in_channels, filters, kernel_size, strides, padding,
                     **kwargs)


class ShiftedConv2DTranspose(tf.Module):
  """Stride-2 transposed convolution that doubles H and W, kept causal.

  Low-resolution cell (k, l) feeds output rows 2k and 2k + 1 only, so a
  network that was causal at low resolution stays causal. With
  `right_shifted=False` (kernel (2, 3)) the output is centred on the cell
  horizontally, as for the vertical stream; with `right_shifted=True`
  (kernel (2, 2)) cell (k, l) feeds only columns 2l and 2l + 1, as for the
  horizontal stream.

  Note: the output is cropped to `output_size`, which may be one less than
  double the input on either axis, for images whose size is odd.
  """

  def __init__(self, in_channels, filters, right_shifted,
               weight_norm=True, init_scale=1.0, dtype=tf.float32,
               name=None):
    super().__init__(name=name)
    self.in_channels = in_channels
    self.filters = filters
    self.right_shifted = right_shifted
    self.kernel_size = (2, 2) if right_shifted else (2, 3)
    self.weight_norm = weight_norm
    self.init_scale = init_scale
    _create_variables(
        self, self.kernel_size + (filters, in_channels), filters, dtype)

  def kernel(self):
    """The effective kernel [kh, kw, C_out, C_in]."""
    if not self.weight_norm:
      return self.v
    return self.g[:, None] * tf.nn.l2_normalize(self.v, axis=[0, 1, 3])

  def __call__(self, x, output_size, init=False, kernel=None):
    """[B, h, w, C_in] -> [B, H, W, C_out] with H <= 2h, W <= 2w."""
    batch, height, width = tf.unstack(tf.shape(x)[:3])
    kh, kw = self.kernel_size
    full_shape = tf.stack([batch, 2 * height + kh - 1,
                           2 * width + kw - 1, self.filters])
    if kernel is None:
      kernel = self.kernel()
    if init and self.weight_norm:
      kernel = tf.nn.l2_normalize(self.v, axis=[0, 1, 3])
    y = tf.nn.conv2d_transpose(x, tf.cast(kernel, x.dtype), full_shape, 2,
                               "VALID")

    # The extra row at the bottom would see the next cell down; the extra
    # columns are the kernel's overhang. Both are cut away.
    left = (kw - 1) // 2
    out_h, out_w = output_size
    y = tf.slice(y, [0, 0, left, 0], [-1, out_h, out_w, -1])
    if init and self.weight_norm:
      return _initialize_gain_and_bias(self, y)
    return tf.nn.bias_add(y, tf.cast(self.b, y.dtype))

  def turned(self, x, output_size, init=False):
    """This layer on an image turned by 180 degrees, as `WeightNormConv2D`.

    x: [B, h, w, C_in], turned; returns [B, H, W, C_out], turned.
    """
    batch, height, width = tf.unstack(tf.shape(x)[:3])
    kh, kw = self.kernel_size
    # The smallest output of a "valid" transposed convolution: 2h + kh - 2
    # rows, each cell writing rows 2k to 2k + kh - 1 of it, turned.
    full_h, full_w = 2 * height + kh - 2, 2 * width + kw - 2
    if init and self.weight_norm:
      kernel = tf.nn.l2_normalize(self.v, axis=[0, 1, 3])
    else:
      kernel = self.kernel()
    y = tf.nn.conv2d_transpose(
        x, tf.cast(tf.reverse(kernel, [0, 1]), x.dtype),
        tf.stack([batch, full_h, full_w, self.filters]), 2, "VALID")
    # The rows and columns that `__call__` keeps, counted from the other
    # end.
    left = (kw - 1) // 2
    out_h, out_w = output_size
    y = tf.slice(y, [0, full_h - out_h, full_w - left - out_w, 0],
                 [-1, out_h, out_w, -1])
    if init and self.weight_norm:
      return _initialize_gain_and_bias(self, y)
    return tf.nn.bias_add(y, tf.cast(self.b, y.dtype))


class NetworkInNetwork(tf.Module):
  """A 1x1 convolution: a dense layer on the channel axis, weight-normalised.

  Maps [..., C_in] to [..., C_out] at every position independently, so it
  never mixes positions and cannot break causality.

  Args:
    in_channels: C_in.
    units: C_out.
    weight_norm, init_scale, dtype, name: as for `WeightNormConv2D`.
    part_rows: for calls on a list of tensors, the rows of the weight
      matrix that each part meets, one list of row indices per part; None
      gives the parts consecutive rows, as if they were concatenated.
  """

  def __init__(self, in_channels, units, weight_norm=True, init_scale=1.0,
               dtype=tf.float32, name=None, part_rows=None):
    super().__init__(name=name)
    self.in_channels = in_channels
    self.units = units
    self.weight_norm = weight_norm
    self.init_scale = init_scale
    self.part_rows = part_rows
    _create_variables(self, [in_channels, units], units, dtype)

  def kernel(self):
    """The effective weight matrix [C_in, C_out]."""
    if not self.weight_norm:
      return self.v
    return self.g * tf.nn.l2_normalize(self.v, axis=0)

  def __call__(self, x, init=False, kernel=None):
    """[..., C_in] -> [..., C_out]; `kernel` as in `WeightNormConv2D`.

    x may also be a list of tensors whose channels add up to C_in: the
    layer then acts on their concatenation on the channel axis (or on the
    rows `part_rows` gives them), without making it.
    """
    parts = list(x) if isinstance(x, (list, tuple)) else [x]
    if init and self.weight_norm:
      kernel = tf.nn.l2_normalize(self.v, axis=0)
    elif kernel is None:
      kernel = self.kernel()
    kernel = tf.cast(kernel, parts[0].dtype)
    rows = [kernel]
    if len(parts) > 1 and self.part_rows is not None:
      rows = [tf.gather(kernel, indices) for indices in self.part_rows]
    elif len(parts) > 1:
      rows = tf.split(kernel, [_size(part, -1) for part in parts])
    y = tf.add_n([tf.tensordot(part, part_rows, 1)
                  for part, part_rows in zip(parts, rows)])
    if init and self.weight_norm:
      return _initialize_gain_and_bias(self, y)
    return y + tf.cast(self.b, y.dtype)


class MaskedConv2D(WeightNormConv2D):
  """Convolution with a raster-order mask (van den Oord et al., 2016).

  The output at (i, j) sees the input rows above i across the kernel's
  width and, in row i, the columns left of j; mask type "A" also hides
  (i, j) itself, type "B" shows it. The mask is the same for every
  channel: the channels of a pixel are one unit, predicted in parallel.
  The output has the input's size and equals a "same" convolution with
  the full (kh, kw) kernel, masked.

  The kernel rows below the centre would be masked entirely, so they are
  not stored: the kernel kept is (kh // 2 + 1, kw), the rows above and the
  centre row, applied with kh // 2 rows of zeros above the input and none
  below. That is the same output for a little over half the arithmetic,
  and a layer that reaches only upwards, as the row-by-row pass of the
  fast sampler needs. Only the centre row carries a mask.

  Weight normalisation divides by the norm of the visible weights: a
  masked weight has no say in the output, so it has none in the norm.

  Args:
    in_channels: input channels C_in.
    filters: output channels C_out.
    kernel_size: (kh, kw), both odd: the full window before masking.
    mask_type: "A" (hides the centre) or "B" (shows it).
    **kwargs: `weight_norm`, `init_scale`, `dtype`, `name` as for
      `WeightNormConv2D`.

  Attributes:
    kernel_size: (kh // 2 + 1, kw), the kernel as stored and applied.
    full_kernel_size: (kh, kw).
    mask: [kh // 2 + 1, kw, 1, 1], 1 where a weight is visible.
  """

  def __init__(self, in_channels, filters, kernel_size, mask_type,
               **kwargs):
    if mask_type not in ("A", "B"):
      raise ValueError(f"mask_type must be 'A' or 'B', not {mask_type!r}")
    kh, kw = kernel_size
    if kh % 2 == 0 or kw % 2 == 0 or kh < 1 or kw < 1:
      raise ValueError(f"a masked convolution needs an odd kernel size, "
                       f"not {tuple(kernel_size)}")
    if mask_type == "A" and kh == 1 and kw == 1:
      raise ValueError("a 1x1 convolution with mask 'A' sees nothing; use "
                       "a larger kernel or mask 'B'")
    stored = (kh // 2 + 1, kw)
    padding = ((kh // 2, 0), (kw // 2, kw // 2))
    super().__init__(in_channels, filters, stored, 1, padding, **kwargs)
    self.mask_type = mask_type
    self.full_kernel_size = (kh, kw)

    # Every row above the centre is visible; in the centre row the columns
    # left of the centre, and the centre itself for type "B".
    visible_in_centre_row = kw // 2 + (1 if mask_type == "B" else 0)
    mask = [[1.0] * kw for _ in range(kh // 2)]
    mask.append([float(c < visible_in_centre_row) for c in range(kw)])
    self.mask = tf.constant(mask, dtype=self.v.dtype)[:, :, None, None]

  def direction(self):
    """The masked kernel scaled to unit norm per output channel."""
    masked_v = self.v * self.mask
    squared_norm = tf.reduce_sum(tf.square(masked_v), axis=[0, 1, 2])
    # The same floor as tf.nn.l2_normalize, used by the other layers.
    return masked_v * tf.math.rsqrt(tf.maximum(squared_norm, 1e-12))

  def kernel(self):
    """The effective kernel [kh // 2 + 1, kw, C_in, C_out], masked."""
    if not self.weight_norm:
      return self.v * self.mask
    return self.g * self.direction()

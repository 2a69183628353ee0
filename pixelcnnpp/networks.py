"""Networks that map images to per-pixel distribution parameters.

A network's `forward(images, labels, ops)` is written once and run in
three ways, chosen by the `ops` object that carries out each layer:

  * `FullPass`: the whole image at once, for training, evaluation and the
    reference sampler. It works on the image turned by 180 degrees, where
    each convolution pads internally (see `layers`).
  * `sampling.RowPass`: one row at a time, with the rows above taken from
    caches, for the fast sampler.
  * `sampling.PixelPass`: one position at a time, with the rows above and
    the columns to the left taken from caches, for the fast sampler.

Every layer call goes through `ops` (`conv`, `deconv`, `nin`,
`down_shift`, `right_shift`, `dropout`), and so do the network's input
and output (`turn`); element-wise code is shared by all passes. For the
cached passes each layer carries two facts about where it sits: `level`,
the resolution stage of its input (0 is full size), and `above_only`, true
when its output at row i depends only on image rows above i (the vertical
stream), so that it need not be recomputed while the pixels of row i are
drawn.
"""

import numpy as np
import tensorflow as tf

from pixelcnnpp import layers
from pixelcnnpp.likelihoods import scale_images


def check_image_shape(image_shape):
  """ValueError unless `image_shape` is three positive integers."""
  shape = tuple(image_shape)
  if len(shape) != 3 or not all(
      isinstance(n, (int, np.integer)) and n >= 1 for n in shape):
    raise ValueError(f"image_shape must be (height, width, channels), "
                     f"three positive integers, not {image_shape}")


class FullPass:
  """Runs layers on whole images, turned by 180 degrees.

  `turn` turns the image on the way in and the parameters on the way out;
  in between every tensor is turned, and each layer runs its `turned`
  form, which gives the same values with less copying.

  Args:
    training: apply dropout.
    init: run data-dependent initialisation of every weight-normalised
      layer on this batch.
    dropout_seed: stateless seed, int32 [2], for the dropout masks; the
      masks do not depend on the data, so two passes with the same seed
      drop the same units.
  """

  def __init__(self, training=False, init=False, dropout_seed=None):
    self.training = training
    self.init = init
    self.dropout_seed = dropout_seed
    self._num_dropouts = 0

  def turn(self, x):
    return layers.turn(x)

  def conv(self, layer, x):
    return layer.turned(x, init=self.init)

  def deconv(self, layer, x, output_size):
    return layer.turned(x, output_size, init=self.init)

  def nin(self, layer, x):
    return layer(x, init=self.init)

  def down_shift(self, x, level):
    del level  # Only the row-by-row passes need it.
    return layers.down_shift(x, turned=True)

  def right_shift(self, x, level):
    del level
    return layers.right_shift(x, turned=True)

  def dropout(self, x, rate):
    if not self.training or rate == 0:
      return x
    seed = tf.random.experimental.stateless_fold_in(
        self.dropout_seed, self._num_dropouts)
    self._num_dropouts += 1
    return layers.dropout(x, rate, seed)


class GatedResnet(tf.Module):
  """Gated residual block of PixelCNN++ with concat_elu.

  x + a * sigmoid(b), where [a, b] = conv2(dropout(concat_elu(
  conv1(concat_elu(x)) + nin(concat_elu(aux))))) + class bias. The two
  convolutions are of the class given (down- or down-right-shifted), so the
  block keeps whichever causal property its stream has, provided `aux`
  has it too.

  `aux` may be a list of `aux_parts` tensors of equal width, each passed
  through concat_elu on its own. The 1x1 weights keep the order of
  concat_elu of the concatenation ([p1, p2, -p1, -p2], as in the paper's
  code), so the block is the same function either way; but each part's
  concat_elu is one that the next block of its stream computes too, and
  the graph computes it once.

  Args:
    num_filters: channels of x and of the output.
    conv_class: `layers.DownShiftedConv2D` or `DownRightShiftedConv2D`.
    aux_channels: channels of the auxiliary input (all its parts), 0 for
      none.
    aux_parts: the number of equal parts the auxiliary input may come in.
    num_classes: label classes for the class-conditional bias, 0 for none.
    dropout_p: dropout rate inside the block.
    level: resolution stage (0 is full size), for the row-by-row pass.
    above_only: x depends only on image rows above each row.
    aux_above_only: so does aux.
  """

  def __init__(self, num_filters, conv_class, aux_channels=0, num_classes=0,
               dropout_p=0.0, level=0, above_only=False,
               aux_above_only=False, weight_norm=True, dtype=tf.float32,
               name=None, aux_parts=1):
    super().__init__(name=name)
    kwargs = dict(weight_norm=weight_norm, dtype=dtype)
    self.dropout_p = dropout_p
    self.conv1 = place(conv_class(2 * num_filters, num_filters, **kwargs),
                       level, above_only)
    self.aux = None
    if aux_channels:
      width = aux_channels // aux_parts
      part_rows = [
          list(range(i * width, (i + 1) * width))
          + list(range(aux_channels + i * width,
                       aux_channels + (i + 1) * width))
          for i in range(aux_parts)]
      self.aux = place(layers.NetworkInNetwork(2 * aux_channels,
                                               num_filters, **kwargs,
                                               part_rows=part_rows),
                       level, aux_above_only)
    self.conv2 = place(conv_class(2 * num_filters, 2 * num_filters,
                                  init_scale=0.1, **kwargs),
                       level, above_only)
    self.class_bias = _class_bias_variable(num_classes, 2 * num_filters,
                                           dtype, "class_bias")

  def __call__(self, x, aux, labels, ops):
    """x [B, H, W, F], aux [B, H, W, A] (or a list) or None, labels [B, N]
    or None."""
    c1 = ops.conv(self.conv1, layers.concat_elu(x))
    if isinstance(aux, (list, tuple)):
      c1 += ops.nin(self.aux, [layers.concat_elu(part) for part in aux])
    elif aux is not None:
      c1 += ops.nin(self.aux, layers.concat_elu(aux))
    c1 = ops.dropout(layers.concat_elu(c1), self.dropout_p)
    c2 = ops.conv(self.conv2, c1)
    if labels is not None:
      c2 += _class_bias(labels, self.class_bias, c2)
    a, b = tf.split(c2, 2, axis=-1)
    return x + a * tf.sigmoid(b)


def _class_bias_variable(num_classes, width, dtype, name):
  """A learned bias per class, [num_classes, width]; None for no classes."""
  if not num_classes:
    return None
  return tf.Variable(tf.random.normal([num_classes, width], stddev=0.05,
                                      dtype=dtype), name=name)


def _class_bias(labels, class_bias, x):
  """The bias of each image's class, [B, 1, 1, C], in x's dtype.

  Under mixed precision the labels and biases are float32 and x 16-bit.
  """
  return tf.cast(tf.matmul(labels, class_bias), x.dtype)[:, None, None, :]


def place(layer, level, above_only=False, reads_image=False):
  """Sets the facts the cached passes need on `layer`; returns it.

  Args:
    layer: a layer of the network.
    level: the resolution stage of its input.
    above_only: its output at row i depends only on rows above i.
    reads_image: its input is the image itself, so its output at (i, j)
      may depend on pixel (i, j) or on pixels right of it; the network
      uses such an output only through a shift or a type "A" mask.
  """
  layer.level = level
  layer.above_only = above_only
  layer.reads_image = reads_image
  return layer


def stage_sizes(height, width, num_hierarchies):
  """Image size at each resolution stage: halved, rounding up."""
  sizes = [(height, width)]
  for _ in range(num_hierarchies - 1):
    h, w = sizes[-1]
    sizes.append(((h + 1) // 2, (w + 1) // 2))
  return sizes


class PixelCNNPlusPlusNetwork(tf.Module):
  """The PixelCNN++ network of Salimans et al. (2017).

  Two streams run side by side: `u` sees the rows above a pixel, `ul` the
  rows above and the pixels to its left. A U-Net of `num_hierarchies`
  stages, joined by stride-2 convolutions on the way down and stride-2
  transposed convolutions on the way up, each stage with `num_resnet`
  gated residual blocks (one more in each upward stage below the lowest),
  and a shortcut from every block of the first pass into its partner of
  the second pass.

  Args:
    image_shape: (H, W, C). Any positive size; stages halve it rounding
      up.
    num_params: parameters per pixel that the likelihood head needs.
    num_filters: channels of every hidden layer.
    num_resnet: gated residual blocks per stage.
    num_hierarchies: resolution stages.
    dropout_p: dropout rate inside the blocks, in [0, 1).
    num_classes: label classes for conditioning, 0 for none.
    weight_norm: weight-normalise every convolution.
    dtype: float dtype of variables and computation.

  Note: the paper's first layer sees the image through a 2x3 and a 1x3 +
  2x1 convolution; so does this one. An extra input channel of ones marks
  the image inside the zero padding, as in the paper's code.
  """

  def __init__(self, image_shape, num_params, num_filters=32, num_resnet=1,
               num_hierarchies=2, dropout_p=0.5, num_classes=0,
               weight_norm=True, dtype=tf.float32, name=None):
    super().__init__(name=name)
    check_image_shape(image_shape)
    height, width, channels = image_shape
    if num_hierarchies < 1 or num_resnet < 1 or num_filters < 1:
      raise ValueError("num_hierarchies, num_resnet and num_filters must "
                       "each be at least 1")
    layers.check_dropout_rate(dropout_p, "dropout_p")
    self.image_shape = tuple(image_shape)
    self.num_params = num_params
    self.num_filters = num_filters
    self.num_resnet = num_resnet
    self.num_hierarchies = num_hierarchies
    self.dropout_p = dropout_p
    self.num_classes = num_classes
    self.dtype = dtype
    self.sizes = stage_sizes(height, width, num_hierarchies)

    nf = num_filters
    kwargs = dict(weight_norm=weight_norm, dtype=dtype)
    down = layers.DownShiftedConv2D
    down_right = layers.DownRightShiftedConv2D

    def block(conv_class, aux_channels, level, above_only,
              aux_above_only=False, aux_parts=1):
      return GatedResnet(nf, conv_class, aux_channels, num_classes,
                         dropout_p, level, above_only, aux_above_only,
                         aux_parts=aux_parts, **kwargs)

    # The first layers see the current row; only the down-shift after
    # them makes the vertical stream depend on the rows above alone.
    self.u_input = place(down(channels + 1, nf, (2, 3), **kwargs), 0,
                         reads_image=True)
    self.ul_input_above = place(down(channels + 1, nf, (1, 3), **kwargs),
                                0, reads_image=True)
    self.ul_input_left = place(
        down_right(channels + 1, nf, (2, 1), **kwargs), 0,
        reads_image=True)

    self.u_downsample, self.ul_downsample = [], []
    self.u_up_blocks, self.ul_up_blocks = [], []
    for level in range(num_hierarchies):
      if level > 0:
        self.u_downsample.append(
            place(down(nf, nf, strides=2, **kwargs), level - 1, True))
        self.ul_downsample.append(
            place(down_right(nf, nf, strides=2, **kwargs), level - 1))
      self.u_up_blocks.append(
          [block(down, 0, level, True) for _ in range(num_resnet)])
      self.ul_up_blocks.append(
          [block(down_right, nf, level, False, True)
           for _ in range(num_resnet)])

    self.u_down_blocks, self.ul_down_blocks = [], []
    self.u_upsample, self.ul_upsample = [], []
    for level in reversed(range(num_hierarchies)):
      extra = 1 if level < num_hierarchies - 1 else 0
      self.u_down_blocks.append(
          [block(down, nf, level, True) for _ in range(num_resnet + extra)])
      self.ul_down_blocks.append(
          [block(down_right, 2 * nf, level, False, aux_parts=2)
           for _ in range(num_resnet + extra)])
      if level > 0:
        self.u_upsample.append(place(
            layers.ShiftedConv2DTranspose(nf, nf, False, **kwargs), level,
            True))
        self.ul_upsample.append(place(
            layers.ShiftedConv2DTranspose(nf, nf, True, **kwargs), level))

    self.output_layer = place(
        layers.NetworkInNetwork(nf, num_params, **kwargs), 0)

  def forward(self, images, labels, ops):
    """Distribution parameters at every pixel.

    Args:
      images: [B, H', W, C] integers 0..255 (H' = H for a full pass, 1 for
        a row).
      labels: [B, num_classes] one-hot in the network's dtype, or None.
      ops: a `FullPass` or a row-by-row pass.

    Returns:
      [B, H', W, num_params] in the network's dtype.
    """
    x = scale_images(ops.turn(images), self.dtype)
    x = tf.concat([x, tf.ones_like(x[..., :1])], axis=-1)

    u = ops.down_shift(ops.conv(self.u_input, x), 0)
    ul = (ops.down_shift(ops.conv(self.ul_input_above, x), 0)
          + ops.right_shift(ops.conv(self.ul_input_left, x), 0))
    u_list, ul_list = [u], [ul]
    for level in range(self.num_hierarchies):
      if level > 0:
        u = ops.conv(self.u_downsample[level - 1], u)
        ul = ops.conv(self.ul_downsample[level - 1], ul)
        u_list.append(u)
        ul_list.append(ul)
      for u_block, ul_block in zip(self.u_up_blocks[level],
                                   self.ul_up_blocks[level]):
        u = u_block(u, None, labels, ops)
        ul = ul_block(ul, u, labels, ops)
        u_list.append(u)
        ul_list.append(ul)

    u, ul = u_list.pop(), ul_list.pop()
    for stage, level in enumerate(reversed(range(self.num_hierarchies))):
      for u_block, ul_block in zip(self.u_down_blocks[stage],
                                   self.ul_down_blocks[stage]):
        u = u_block(u, u_list.pop(), labels, ops)
        ul = ul_block(ul, [u, ul_list.pop()], labels, ops)
      if level > 0:
        size = self.sizes[level - 1]
        u = ops.deconv(self.u_upsample[stage], u, size)
        ul = ops.deconv(self.ul_upsample[stage], ul, size)

    return ops.turn(ops.nin(self.output_layer, tf.nn.elu(ul)))


def gated_activation(x):
  """tanh(a) * sigmoid(b) for x = [a, b] split on channels; halves C."""
  a, b = tf.split(x, 2, axis=-1)
  return tf.tanh(a) * tf.sigmoid(b)


def _check_kernel_size(name, size, smallest):
  if size < smallest or size % 2 == 0:
    raise ValueError(f"{name} must be odd and at least {smallest}, not "
                     f"{size}")


class _StackedNetwork(tf.Module):
  """Argument checks and settings shared by the masked and gated PixelCNNs.

  Both are a first layer of kernel `first_kernel_size` and `num_layers`
  blocks of kernel `kernel_size` at full resolution.
  """

  def __init__(self, image_shape, num_params, num_filters, num_layers,
               first_kernel_size, kernel_size, dropout_p, num_classes, dtype,
               name):
    super().__init__(name=name)
    check_image_shape(image_shape)
    if num_filters < 1 or num_layers < 0:
      raise ValueError("num_filters must be at least 1 and num_layers at "
                       "least 0")
    _check_kernel_size("first_kernel_size", first_kernel_size, 3)
    _check_kernel_size("kernel_size", kernel_size, 1)
    layers.check_dropout_rate(dropout_p, "dropout_p")
    self.image_shape = tuple(image_shape)
    self.num_params = num_params
    self.num_filters = num_filters
    self.num_layers = num_layers
    self.num_classes = num_classes
    self.dtype = dtype


class PixelCNNResidualBlock(tf.Module):
  """Residual block of the masked PixelCNN (van den Oord et al., 2016a).

  As in figure 5 of that paper: x + up(relu(masked(relu(down(relu(x)))))),
  where down is a 1x1 convolution from 2h to h channels, masked a type "B"
  masked k x k convolution on h channels, and up a 1x1 convolution back to
  2h. The 1x1 convolutions act at each position alone, so only the masked
  one decides what the block sees: the block keeps its input's causality.

  Args:
    num_filters: h; x and the output have 2h channels.
    kernel_size: k, odd, of the masked convolution.
    num_classes: label classes for a class-conditional bias added after
      the masked convolution, 0 for none.
    dropout_p: dropout rate before the last 1x1 convolution.
    weight_norm, dtype: as for the layers.
  """

  def __init__(self, num_filters, kernel_size=3, num_classes=0,
               dropout_p=0.0, weight_norm=True, dtype=tf.float32,
               name=None):
    super().__init__(name=name)
    kwargs = dict(weight_norm=weight_norm, dtype=dtype)
    nf = num_filters
    self.dropout_p = dropout_p
    self.down = place(layers.NetworkInNetwork(2 * nf, nf, **kwargs), 0)
    self.masked = place(layers.MaskedConv2D(
        nf, nf, (kernel_size, kernel_size), "B", **kwargs), 0)
    # A small start for the residual branch keeps a deep stack near the
    # identity after data-dependent initialisation.
    self.up = place(layers.NetworkInNetwork(nf, 2 * nf, init_scale=0.1,
                                            **kwargs), 0)
    self.class_bias = _class_bias_variable(num_classes, nf, dtype,
                                           "class_bias")

  def __call__(self, x, labels, ops):
    """x [B, H, W, 2h], labels [B, N] one-hot or None -> [B, H, W, 2h]."""
    y = ops.nin(self.down, tf.nn.relu(x))
    y = ops.conv(self.masked, tf.nn.relu(y))
    if labels is not None:
      y += _class_bias(labels, self.class_bias, y)
    y = ops.dropout(tf.nn.relu(y), self.dropout_p)
    return x + ops.nin(self.up, y)


class PixelCNNNetwork(_StackedNetwork):
  """The masked PixelCNN of van den Oord et al. (2016a).

  A type "A" masked convolution of `first_kernel_size` on the image, with
  no residual connection around it (its input is the image, which the
  output must not see at its own pixel); then `num_layers` residual
  blocks, each around a type "B" masked convolution; then ReLU, a 1x1
  convolution, ReLU and a 1x1 convolution to the head's parameters.
  Hidden widths are 2h around the blocks and h inside them, h being
  `num_filters`.

  Args:
    image_shape: (H, W, C).
    num_params: parameters per pixel that the likelihood head needs.
    num_filters: h.
    num_layers: residual blocks after the first layer, 0 or more.
    first_kernel_size: odd size of the square type "A" kernel.
    kernel_size: odd size of the square type "B" kernels in the blocks.
    dropout_p: dropout rate inside the blocks, in [0, 1).
    num_classes: label classes for conditioning, 0 for none; each block
      adds a learned bias per class.
    weight_norm: weight-normalise every convolution.
    dtype: float dtype of variables and computation.

  Note: stacked masked convolutions leave a blind spot by design. A 3x3
  type "B" kernel reaches one column further right only by also going a
  row up, so the receptive field cannot grow to the upper right faster
  than one column per row: with a first kernel of size k0 the pixels
  (i - r, j + c) with c > k0 // 2 + r - 1 are never seen, however deep
  the stack. The wedge starts at (i - 1, j + k0 // 2 + 1), (i - 1, j + 4)
  for the default 7x7. The gated PixelCNN's two stacks remove it.

  Note: the paper uses no normalisation and no dropout; this network adds
  weight normalisation (as the rest of the package) and optional dropout,
  off by default. Batch, layer or instance normalisation would mix
  statistics over later pixels into earlier ones, so none is used.
  """

  def __init__(self, image_shape, num_params, num_filters=32, num_layers=8,
               first_kernel_size=7, kernel_size=3, dropout_p=0.0,
               num_classes=0, weight_norm=True, dtype=tf.float32,
               name=None):
    super().__init__(image_shape, num_params, num_filters, num_layers,
                     first_kernel_size, kernel_size, dropout_p, num_classes,
                     dtype, name)
    channels = image_shape[2]

    nf = num_filters
    kwargs = dict(weight_norm=weight_norm, dtype=dtype)
    # Every layer sees the current row (left of each pixel), so none is
    # above_only: the fast sampler recomputes them all for each pixel.
    self.input_layer = place(layers.MaskedConv2D(
        channels, 2 * nf, (first_kernel_size, first_kernel_size), "A",
        **kwargs), 0, reads_image=True)
    self.blocks = [PixelCNNResidualBlock(nf, kernel_size, num_classes,
                                         dropout_p, **kwargs)
                   for _ in range(num_layers)]
    self.output_hidden = place(
        layers.NetworkInNetwork(2 * nf, 2 * nf, **kwargs), 0)
    self.output_layer = place(
        layers.NetworkInNetwork(2 * nf, num_params, **kwargs), 0)

  def forward(self, images, labels, ops):
    """Distribution parameters at every pixel.

    Args:
      images: [B, H', W, C] values 0..255 (H' = H for a full pass, 1 for
        a row).
      labels: [B, num_classes] one-hot in the network's dtype, or None.
      ops: a `FullPass` or a row-by-row pass.

    Returns:
      [B, H', W, num_params] in the network's dtype.
    """
    x = ops.conv(self.input_layer,
                 scale_images(ops.turn(images), self.dtype))
    for block in self.blocks:
      x = block(x, labels, ops)
    x = ops.nin(self.output_hidden, tf.nn.relu(x))
    return ops.turn(ops.nin(self.output_layer, tf.nn.relu(x)))


class GatedPixelCNNLayer(tf.Module):
  """A layer of the gated PixelCNN (van den Oord et al., 2016b, figure 2).

  The vertical stack v sees only rows above each pixel; the horizontal
  stack h sees those and the pixels to the left in its row:

    v_pre = conv_v(v)                    (kernel (k // 2 + 1, k))
    h_pre = conv_h(h) + link(v_pre)      (kernel (1, k // 2 + 1), 1x1)
    v' = gate(v_pre + class bias)
    h' = h + out(gate(h_pre + class bias))

  gate([a, b]) = tanh(a) * sigmoid(b). `conv_v` reaches its own row of v,
  which is safe because v at row i already depends on rows above i only
  (the network shifts v down once, after its first convolution); so the
  link from v to h needs no further shift.

  Args:
    num_filters: p, the channels of v and h.
    kernel_size: k, odd.
    num_classes: label classes for the class-conditional biases, 0 for
      none.
    dropout_p: dropout rate on the horizontal gate's output.
    weight_norm, dtype: as for the layers.
  """

  def __init__(self, num_filters, kernel_size=3, num_classes=0,
               dropout_p=0.0, weight_norm=True, dtype=tf.float32,
               name=None):
    super().__init__(name=name)
    kwargs = dict(weight_norm=weight_norm, dtype=dtype)
    nf, k = num_filters, kernel_size
    self.dropout_p = dropout_p
    self.v_conv = place(layers.DownShiftedConv2D(
        nf, 2 * nf, (k // 2 + 1, k), **kwargs), 0, above_only=True)
    self.link = place(layers.NetworkInNetwork(2 * nf, 2 * nf, **kwargs), 0,
                      above_only=True)
    self.h_conv = place(layers.DownRightShiftedConv2D(
        nf, 2 * nf, (1, k // 2 + 1), **kwargs), 0)
    self.h_out = place(layers.NetworkInNetwork(nf, nf, init_scale=0.1,
                                               **kwargs), 0)
    self.v_class_bias = _class_bias_variable(num_classes, 2 * nf, dtype,
                                             "v_class_bias")
    self.h_class_bias = _class_bias_variable(num_classes, 2 * nf, dtype,
                                             "h_class_bias")

  def __call__(self, v, h, labels, ops):
    """v, h [B, H, W, p], labels [B, N] or None -> new (v, h)."""
    v_pre = ops.conv(self.v_conv, v)
    h_pre = ops.conv(self.h_conv, h) + ops.nin(self.link, v_pre)
    if labels is not None:
      v_pre += _class_bias(labels, self.v_class_bias, v_pre)
      h_pre += _class_bias(labels, self.h_class_bias, h_pre)
    gated = ops.dropout(gated_activation(h_pre), self.dropout_p)
    return gated_activation(v_pre), h + ops.nin(self.h_out, gated)


class GatedPixelCNNNetwork(_StackedNetwork):
  """The gated PixelCNN of van den Oord et al. (2016b), without blind spot.

  A vertical stack sees every pixel in the rows above, within its
  receptive field; a horizontal stack sees the pixels to the left in the
  row and, through a 1x1 link from the vertical stack at every layer,
  everything the vertical stack sees. Together they cover the whole past
  of a pixel near it: no blind spot.

  The first layer works on the image:

    v_pre = down_shift(conv(x))          (kernel (k0 // 2 + 1, k0))
    h_pre = right_shift(conv(x)) + link(v_pre)      (kernel (1, k0 // 2))
    v = gate(v_pre + class bias)
    h = out(gate(h_pre + class bias))

  The down-shift makes v at row i depend on rows above i alone, and the
  right-shift keeps the current pixel out of h. There is no residual
  connection around this layer, whose input is the image. Then
  `num_layers` `GatedPixelCNNLayer`s of kernel size k, and ReLU, a 1x1
  convolution, ReLU and a 1x1 convolution from h to the head's
  parameters.

  Args:
    image_shape: (H, W, C).
    num_params: parameters per pixel that the likelihood head needs.
    num_filters: p, channels of both stacks.
    num_layers: gated layers after the first, 0 or more.
    first_kernel_size: k0, odd, at least 3.
    kernel_size: k, odd.
    dropout_p: dropout rate in the horizontal stack, in [0, 1).
    num_classes: label classes for conditioning, 0 for none; every gated
      activation adds a learned bias per class.
    weight_norm: weight-normalise every convolution.
    dtype: float dtype of variables and computation.

  Note: the paper shifts the link from the vertical to the horizontal
  stack down a row at every layer; shifting the vertical stack once, after
  its first convolution, as PixelCNN++ does, gives the same receptive
  field, and lets the fast sampler compute the vertical stack once per
  row. The paper also uses no weight normalisation or dropout; dropout is
  off by default here.
  """

  def __init__(self, image_shape, num_params, num_filters=32, num_layers=8,
               first_kernel_size=7, kernel_size=3, dropout_p=0.0,
               num_classes=0, weight_norm=True, dtype=tf.float32,
               name=None):
    super().__init__(image_shape, num_params, num_filters, num_layers,
                     first_kernel_size, kernel_size, dropout_p, num_classes,
                     dtype, name)
    channels = image_shape[2]

    nf, k0 = num_filters, first_kernel_size
    kwargs = dict(weight_norm=weight_norm, dtype=dtype)
    # The first convolutions see the current row; only what follows the
    # down-shift depends on the rows above alone.
    self.v_input = place(layers.DownShiftedConv2D(
        channels, 2 * nf, (k0 // 2 + 1, k0), **kwargs), 0,
        reads_image=True)
    self.h_input = place(layers.DownRightShiftedConv2D(
        channels, 2 * nf, (1, k0 // 2), **kwargs), 0, reads_image=True)
    self.input_link = place(
        layers.NetworkInNetwork(2 * nf, 2 * nf, **kwargs), 0,
        above_only=True)
    self.h_input_out = place(layers.NetworkInNetwork(nf, nf, **kwargs), 0)
    self.v_class_bias = _class_bias_variable(num_classes, 2 * nf, dtype,
                                             "v_class_bias")
    self.h_class_bias = _class_bias_variable(num_classes, 2 * nf, dtype,
                                             "h_class_bias")
    self.gated_layers = [
        GatedPixelCNNLayer(nf, kernel_size, num_classes, dropout_p,
                           **kwargs)
        for _ in range(num_layers)]
    self.output_hidden = place(
        layers.NetworkInNetwork(nf, 2 * nf, **kwargs), 0)
    self.output_layer = place(
        layers.NetworkInNetwork(2 * nf, num_params, **kwargs), 0)

  def forward(self, images, labels, ops):
    """Distribution parameters at every pixel.

    Args:
      images: [B, H', W, C] values 0..255 (H' = H for a full pass, 1 for
        a row).
      labels: [B, num_classes] one-hot in the network's dtype, or None.
      ops: a `FullPass` or a row-by-row pass.

    Returns:
      [B, H', W, num_params] in the network's dtype.
    """
    x = scale_images(ops.turn(images), self.dtype)

    v_pre = ops.down_shift(ops.conv(self.v_input, x), 0)
    h_pre = (ops.right_shift(ops.conv(self.h_input, x), 0)
             + ops.nin(self.input_link, v_pre))
    if labels is not None:
      v_pre += _class_bias(labels, self.v_class_bias, v_pre)
      h_pre += _class_bias(labels, self.h_class_bias, h_pre)
    v = gated_activation(v_pre)
    h = ops.nin(self.h_input_out, gated_activation(h_pre))

    for layer in self.gated_layers:
      v, h = layer(v, h, labels, ops)

    out = ops.nin(self.output_hidden, tf.nn.relu(h))
    return ops.turn(ops.nin(self.output_layer, tf.nn.relu(out)))

"""Input pipeline: image data sets as tf.data, from files or from TFDS.

Every image this module hands out is uint8 in 0..255 with shape [H, W, C],
C = 1 for grayscale and 3 for colour; the model does its own scaling. Labels
are int32 scalars. `load` takes a data set from the first source that has it:

1. a folder of image files, named by `name` itself;
2. for MNIST and Fashion-MNIST, the four IDX files in `data_dir` or in the
   usual places (see `load`), or the Keras cache;
3. TFDS, first from an already prepared data directory, then by download.

When none of them works it raises `DataSourceError`, whose message lists the
places looked at and how to provide the data.
"""

import dataclasses
import gzip
import numbers
import os
import pathlib
import socket

from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageOps
import tensorflow as tf

# The repository is the parent of the package directory; its sibling
# `shared/` holds data for machines that cannot download.
_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

_IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# Type byte of an IDX header -> numpy dtype. Multi-byte types are big-endian.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Names that have an IDX source, mapped to the name of their directories.
_IDX_NAMES = {
    "mnist": "mnist",
    "fashion_mnist": "fashion_mnist",
    "fashion-mnist": "fashion_mnist",
}

_MAX_SHUFFLE_BUFFER = 60000
# Where a TFDS download is expected to be able to connect before one is
# tried: offline, TFDS itself retries for minutes before it gives up.
_DOWNLOAD_PROBE = ("storage.googleapis.com", 443)
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")

# PIL modes whose pixels carry a single grey level.
_GRAY_MODES = frozenset(
    {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class DataSourceError(Exception):
    """No source could provide the requested data set.

    The message is one paragraph: every source tried, why it failed, and how
    to provide the data.
    """


@dataclasses.dataclass(frozen=True)
class ImageData:
    """A data set split in two, with what the model needs to know about it.

    Attributes:
      train: unbatched elements {"image": uint8 [H, W, C] in 0..255,
        "label": int32 []}. The label is 0 when the data has no labels.
      test: the held-out split, with the same element structure.
      image_shape: (H, W, C), C being 1 or 3.
      num_classes: number of label values, 0 when the data has no labels.
      num_train: number of elements in `train`.
      num_test: number of elements in `test`.
      source: where the data came from, for logs and reports.
    """

    train: tf.data.Dataset
    test: tf.data.Dataset
    image_shape: tuple
    num_classes: int
    num_train: int
    num_test: int
    source: str


def load(name, data_dir=None, image_size=None, grayscale=False,
         test_fraction=0.1, seed=0, *, skip_bad_files=False):
    """Loads an image data set from the first source that has it.

    Sources, in order:

    1. `name` is a directory. If it holds the four MNIST-style IDX files
       they are read; otherwise it is a folder of image files (any format
       PIL reads, typically PNG or JPEG). If it has subfolders, each one is
       a class and labels follow the sorted folder names; otherwise there
       are no labels. Images become RGB, or grayscale when `grayscale` is
       set or every image is grayscale. A reproducible `test_fraction` of
       them, drawn with `seed`, is held out as the test split.
    2. `name` is "mnist" or "fashion_mnist": the four IDX files
       (train-images-idx3-ubyte and so on, gzipped or not) in `data_dir` or
       `data_dir/<name>`. When `data_dir` is None:
       $PIXELCNNPP_DATA_DIR/<name>; for MNIST ../shared/data/mnist from the
       current directory and from the repository root, then
       ~/.keras/datasets/mnist.npz; for Fashion-MNIST
       /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist)
       and ~/.keras/datasets/fashion-mnist.
    3. TFDS: `tfds.load(name, data_dir=data_dir, download=False)`, then the
       same with download. The "image" feature is used, with "label" if
       there is one. The test split is "test", or else a reproducible
       `test_fraction` of "train" drawn with `seed`.

    Args:
      name: a directory of images or IDX files, or a data set name such as
        "mnist", "fashion_mnist" or any TFDS image data set ("cifar10").
      data_dir: directory holding the IDX files or the prepared TFDS data.
      image_size: if given, the side in pixels of the square images
        returned: images are centre-cropped to a square and resized. If
        None, images keep their native size, which must then be the same
        for all of them.
      grayscale: convert colour images to one channel.
      test_fraction: share of images held out, in [0, 1), when the source
        has no test split of its own (folders, TFDS data sets without one).
      seed: seed of that held-out draw.
      skip_bad_files: for folders: log a warning for each file that cannot
        be decoded and go on without it, rather than raising an error.

    Returns:
      An `ImageData` whose elements are {"image": uint8 [H, W, C] in
      0..255, "label": int32 []}.

    Raises:
      DataSourceError: no source has the data set.
      ValueError: bad arguments, or data that exists but cannot be used
        (corrupt files, images of unexpected shape or type).
    """
    _check_options(image_size, test_fraction)
    tried = []

    path = pathlib.Path(os.fspath(name)).expanduser()
    if path.is_dir():
        idx_files = _find_idx_files(path)
        if idx_files is not None:
            return _from_arrays(*_read_idx_set(idx_files), num_classes=10,
                                source=f"IDX files in {path}",
                                grayscale=grayscale, image_size=image_size)
        return _from_folder(path, image_size, grayscale, test_fraction, seed,
                            skip_bad_files)
    tried.append(f"a folder of images at {os.path.abspath(path)} "
                 "(no such directory)")

    idx_name = _IDX_NAMES.get(str(name).lower())
    if idx_name is not None:
        data = _from_idx_places(idx_name, data_dir, grayscale, image_size,
                                tried)
        if data is not None:
            return data

    data = _from_tfds(str(name), data_dir, grayscale, image_size,
                      test_fraction, seed, tried)
    if data is not None:
        return data

    raise DataSourceError(_no_source_message(name, tried)) from None


def batches(dataset, batch_size, shuffle=False, seed=0, repeat=False,
            drop_remainder=False):
    """Shuffles, repeats, batches and prefetches a data set of elements.

    Args:
      dataset: unbatched elements, e.g. `ImageData.train`.
      batch_size: number of elements per batch, a positive int.
      shuffle: shuffle with a buffer of the whole data set (at most 60000
        elements), in a new order each epoch, reproducible from `seed`.
      seed: the shuffle seed.
      repeat: repeat forever, as for training.
      drop_remainder: drop the last, smaller batch. Leave False for
        evaluation so that every element of a split is counted.

    Returns:
      A tf.data.Dataset of batches: each component of an element gains a
      leading batch dimension (images uint8 [B, H, W, C] in 0..255, labels
      int32 [B]), B = batch_size except maybe for the last batch.
    """
    if (isinstance(batch_size, bool)
            or not isinstance(batch_size, numbers.Integral)
            or batch_size < 1):
        raise ValueError(
            f"batch_size must be a positive integer, got {batch_size!r}.")

    if shuffle:
        # Cardinality is negative when unknown or infinite; such a data set
        # gets the largest buffer, as one at least that large would.
        size = int(dataset.cardinality())
        buffer_size = _MAX_SHUFFLE_BUFFER if size < 0 else size
        buffer_size = max(1, min(buffer_size, _MAX_SHUFFLE_BUFFER))
        dataset = dataset.shuffle(buffer_size, seed=seed,
                                  reshuffle_each_iteration=True)

    # Repeating after shuffling keeps epochs apart: every element is seen
    # once before any is seen twice.
    if repeat:
        dataset = dataset.repeat()

    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


def load_images(path, image_size=None, grayscale=False, *,
                skip_bad_files=False):
    """Reads images to score, from a directory, an .npz or one image file.

    A directory is read with its subfolders, files in sorted path order,
    with the colour rules of `load` (RGB, or grayscale when asked or when
    every image is). An .npz gives its array "images", or else its first
    array, of shape [N, H, W] or [N, H, W, C] with C = 1 or 3, holding
    uint8 or other integers in 0..255.

    Args:
      path: a directory, an .npz file or a single image file.
      image_size: if given, centre-crop each image to a square and resize
        it to image_size x image_size pixels.
      grayscale: convert colour images to one channel.
      skip_bad_files: log and skip files that cannot be decoded, rather
        than raising an error.

    Returns:
      uint8 numpy array [N, H, W, C] with values in 0..255.
    """
    _check_options(image_size, 0.0)
    path = pathlib.Path(os.fspath(path)).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"No such file or directory: {path}. Pass a directory of image "
            "files, an .npz file or one image file.")

    if path.suffix.lower() == ".npz" and path.is_file():
        images = _images_from_npz(path)
        return _adjust_images(images, grayscale, image_size).numpy()

    files = _list_files(path) if path.is_dir() else [path]
    if not files:
        raise ValueError(
            f"{path} holds no files; put the images to score in it.")
    images, _ = _decode_images(files, image_size, grayscale, skip_bad_files)
    return images


def read_idx(path):
    """Reads an IDX file (the format of MNIST), gzipped or not.

    Args:
      path: the file. Gzip is recognised by its content, not by its name.

    Returns:
      A numpy array in native byte order with the shape and type that the
      header gives: uint8 [N, 28, 28] for MNIST images, uint8 [N] for its
      labels.

    Raises:
      ValueError: the file is not a valid IDX file.
    """
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        is_gzip = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if is_gzip else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise ValueError(
            f"{path} is a damaged gzip file ({error}); replace it with an "
            "intact copy.") from None

    # Header: two zero bytes, a type byte, the rank, then one big-endian
    # uint32 per dimension.
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise ValueError(
            f"{path} is not an IDX file: it starts with bytes "
            f"{raw[:4].hex(' ')!r} where an IDX header has 00 00, a type "
            "code and the rank.")
    dtype = _IDX_DTYPES[raw[2]]
    rank = raw[3]
    data_start = 4 + 4 * rank
    if len(raw) < data_start:
        raise ValueError(f"{path} is truncated inside its IDX header.")

    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", rank, offset=4))
    expected = data_start + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path} has {len(raw)} bytes, but its IDX header promises "
            f"{expected} for shape {shape}: the file is truncated or "
            "damaged.")

    array = np.frombuffer(raw, dtype, offset=data_start).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _check_options(image_size, test_fraction):
    """Rejects bad values of the options shared by `load` and friends."""
    if image_size is not None and (
            isinstance(image_size, bool)
            or not isinstance(image_size, numbers.Integral)
            or image_size < 1):
        raise ValueError(
            "image_size must be a positive integer or None, got "
            f"{image_size!r}.")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(
            f"test_fraction must be in [0, 1), got {test_fraction!r}.")


def _from_arrays(train_images, train_labels, test_images, test_labels,
                 num_classes, source, grayscale, image_size):
    """Builds an ImageData from in-memory arrays.

    Args:
      train_images, test_images: uint8 [N, H, W, C] in 0..255, C = 1 or 3.
      train_labels, test_labels: integers [N].
      num_classes, source: as in ImageData.
      grayscale, image_size: as in `load`, applied once here rather than
        on every pass over the data.

    Returns:
      An ImageData whose data sets slice the converted arrays.
    """
    train_images = _adjust_images(train_images, grayscale, image_size)
    test_images = _adjust_images(test_images, grayscale, image_size)

    def dataset(images, labels):
        labels = np.asarray(labels, np.int32)
        return tf.data.Dataset.from_tensor_slices(
            {"image": images, "label": labels})

    return ImageData(
        train=dataset(train_images, train_labels),
        test=dataset(test_images, test_labels),
        image_shape=tuple(int(d) for d in train_images.shape[1:]),
        num_classes=num_classes,
        num_train=int(train_images.shape[0]),
        num_test=int(test_images.shape[0]),
        source=source)


def _adjust_images(images, grayscale, image_size):
    """Applies the grayscale and size options to uint8 images.

    Args:
      images: uint8 [H, W, C] or [N, H, W, C] in 0..255, array or tensor.
      grayscale: turn C = 3 into C = 1 with tf.image.rgb_to_grayscale.
      image_size: None, or the side of the square output: the centre
        square is cropped, resized bilinearly (antialiased when shrinking),
        rounded and clipped to 0..255.

    Returns:
      A uint8 tensor of the same rank, [..., image_size, image_size, C]
      when resized.
    """
    images = tf.convert_to_tensor(images)
    if grayscale and images.shape[-1] == 3:
        images = tf.image.rgb_to_grayscale(images)

    if image_size is None:
        return images
    if tuple(images.shape[-3:-1]) == (image_size, image_size):
        return images

    shape = tf.shape(images)
    height, width = shape[-3], shape[-2]
    side = tf.minimum(height, width)
    square = tf.image.crop_to_bounding_box(
        images, (height - side) // 2, (width - side) // 2, side, side)

    # Antialiasing only matters when shrinking, and it makes resizing about
    # twenty times slower, so enlargements of known size go without.
    static_sides = [d for d in images.shape[-3:-1] if d is not None]
    antialias = len(static_sides) < 2 or image_size < min(static_sides)
    resized = tf.image.resize(square, (image_size, image_size),
                              antialias=antialias)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def _check_image_array(images, where):
    """Returns uint8 images [N, H, W, C], adding C = 1 to [N, H, W] input.

    Raises ValueError naming `where` for any other shape, for C other than
    1 or 3, or for values that are not integers in 0..255.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"{where} has images of shape {images.shape}; expected "
            "[N, H, W] or [N, H, W, C] with C = 1 (grey) or 3 (RGB).")

    if images.dtype == np.uint8:
        return images
    if (np.issubdtype(images.dtype, np.integer) and images.size
            and images.min() >= 0 and images.max() <= 255):
        return images.astype(np.uint8)
    raise ValueError(
        f"{where} has images of type {images.dtype}; expected uint8 values "
        "in 0..255. Convert them first (floats in [0, 1]: multiply by 255 "
        "and round).")


def _find_idx_files(directory):
    """Returns the paths of the four IDX files in `directory`, or None.

    Each file may be plain or gzipped (".gz"); the plain one wins when both
    are there. The paths are in the order of _IDX_STEMS.
    """
    found = []
    for stem in _IDX_STEMS:
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            return None
    return found


def _read_idx_set(idx_files):
    """Reads and checks the four IDX files of an MNIST-style data set.

    Args:
      idx_files: paths in the order of _IDX_STEMS.

    Returns:
      (train_images, train_labels, test_images, test_labels): images uint8
      [N, H, W, 1] in 0..255, labels int32 [N].
    """
    arrays = [read_idx(path) for path in idx_files]

    for i in (0, 2):
        images, labels = arrays[i], arrays[i + 1]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"{idx_files[i]} holds {images.dtype} data of shape "
                f"{images.shape}; IDX image files must hold uint8 "
                "[N, H, W].")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(
                f"{idx_files[i + 1]} holds labels of shape {labels.shape} "
                f"for the {len(images)} images of {idx_files[i]}; they "
                "must match one to one.")

    return (arrays[0][..., np.newaxis], arrays[1].astype(np.int32),
            arrays[2][..., np.newaxis], arrays[3].astype(np.int32))


def _idx_places(idx_name, data_dir):
    """Returns the directories to search for the IDX files of `idx_name`."""
    if data_dir is not None:
        data_dir = pathlib.Path(data_dir).expanduser()
        return [data_dir, data_dir / idx_name]

    places = []
    if os.environ.get("PIXELCNNPP_DATA_DIR"):
        env_dir = pathlib.Path(os.environ["PIXELCNNPP_DATA_DIR"])
        places.append(env_dir.expanduser() / idx_name)
    if idx_name == "mnist":
        places.append(pathlib.Path("../shared/data/mnist"))
        places.append(_REPO_ROOT.parent / "shared" / "data" / "mnist")
    else:
        places.append(pathlib.Path("/usr/share/datasets/fashion-mnist"))
        places.append(
            pathlib.Path("~/.keras/datasets/fashion-mnist").expanduser())

    # The two relative MNIST places are one when run from the repository.
    unique = []
    for place in places:
        if all(place.resolve() != seen.resolve() for seen in unique):
            unique.append(place)
    return unique


def _from_idx_places(idx_name, data_dir, grayscale, image_size, tried):
    """Loads MNIST or Fashion-MNIST from IDX files or the Keras cache.

    Returns None, after adding what was looked at to `tried`, when no place
    has the files.
    """
    for place in _idx_places(idx_name, data_dir):
        idx_files = _find_idx_files(place)
        if idx_files is not None:
            return _from_arrays(*_read_idx_set(idx_files), num_classes=10,
                                source=f"IDX files in {place}",
                                grayscale=grayscale, image_size=image_size)
        tried.append(f"the four IDX files in {os.path.abspath(place)} "
                     f"({_what_is_missing(place)})")

    if idx_name == "mnist" and data_dir is None:
        keras_file = pathlib.Path("~/.keras/datasets/mnist.npz").expanduser()
        if keras_file.is_file():
            return _from_arrays(*_read_keras_mnist(keras_file),
                                num_classes=10,
                                source=f"the Keras cache {keras_file}",
                                grayscale=grayscale, image_size=image_size)
        tried.append(f"the Keras cache {keras_file} (not found)")
    return None


def _what_is_missing(place):
    """Says in a few words why `place` does not hold the four IDX files."""
    if not place.is_dir():
        return "no such directory"
    missing = [stem for stem in _IDX_STEMS
               if not (place / stem).is_file()
               and not (place / f"{stem}.gz").is_file()]
    return "missing " + ", ".join(missing)


def _read_keras_mnist(path):
    """Reads Keras' mnist.npz into arrays as _read_idx_set returns them."""
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(path) as npz:
            arrays = [npz[key] for key in keys]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"{path} is not a usable Keras MNIST cache ({error}); delete it "
            "or replace it with an intact copy.") from None

    return (_check_image_array(arrays[0], path), arrays[1].astype(np.int32),
            _check_image_array(arrays[2], path), arrays[3].astype(np.int32))


def _from_folder(root, image_size, grayscale, test_fraction, seed,
                 skip_bad_files):
    """Loads a folder of image files, labelled by subfolder if it has any."""
    class_dirs = sorted(p for p in root.iterdir()
                        if p.is_dir() and not p.name.startswith("."))
    if class_dirs:
        loose = [p for p in root.iterdir()
                 if p.is_file() and not p.name.startswith(".")]
        if loose:
            logging.warning(
                "%s has class subfolders; ignoring the %d files beside "
                "them, such as %s.", root, len(loose), loose[0].name)
        files, labels = [], []
        for label, class_dir in enumerate(class_dirs):
            class_files = _list_files(class_dir)
            files += class_files
            labels += [label] * len(class_files)
    else:
        files = _list_files(root)
        labels = [0] * len(files)
    if not files:
        raise ValueError(
            f"{root} holds no image files: put images in it, or in one "
            "subfolder per class.")

    images, kept = _decode_images(files, image_size, grayscale,
                                  skip_bad_files)
    labels = np.asarray(labels, np.int32)[kept]

    train, test = _split_indices(len(images), test_fraction, seed)
    what = (f"{len(class_dirs)} class folders" if class_dirs
            else "no labels")
    return _from_arrays(images[train], labels[train], images[test],
                        labels[test], num_classes=len(class_dirs),
                        source=f"image folder {root} ({what})",
                        grayscale=False, image_size=None)


def _list_files(directory):
    """Returns the non-hidden files under `directory`, sorted by path."""
    return sorted(
        p for p in directory.rglob("*")
        if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(directory).parts))


def _decode_images(files, image_size, grayscale, skip_bad_files):
    """Decodes image files with PIL into one array.

    Images become RGB, or grayscale ("L") when `grayscale` is set or all of
    them are grayscale. With `image_size` each is centre-cropped to a
    square and resized; otherwise all must have the same size.

    Args:
      files: paths of the image files.
      image_size, grayscale, skip_bad_files: as in `load`.

    Returns:
      (images, kept): images uint8 [N, H, W, C] in 0..255, C = 1 or 3, and
      int64 [N], the indices into `files` of the files decoded, in order.
    """
    decoded, kept = [], []
    for i, path in enumerate(files):
        try:
            with Image.open(path) as image:
                # Cameras store the rotation of a JPEG in a tag; apply it so
                # that the pixels stand as image viewers show them.
                image = ImageOps.exif_transpose(image)
                gray = image.mode in _GRAY_MODES
                image = image.convert("L" if gray else "RGB")
        # PIL raises SyntaxError for some broken PNG files.
        except (OSError, ValueError, SyntaxError,
                Image.DecompressionBombError) as error:
            if not skip_bad_files:
                raise ValueError(
                    f"Cannot decode {path} as an image ({error}). Remove "
                    "the file, or leave it out with --skip_bad_files on "
                    "the command line (skip_bad_files=True in "
                    "Python).") from None
            logging.warning("Skipping %s: not a readable image (%s).",
                            path, error)
            continue
        decoded.append(image)
        kept.append(i)
    if not decoded:
        raise ValueError(
            f"None of the {len(files)} files, such as {files[0]}, is a "
            "readable image.")

    all_gray = all(image.mode == "L" for image in decoded)
    mode = "L" if grayscale or all_gray else "RGB"
    decoded = [image.convert(mode) for image in decoded]

    if image_size is not None:
        decoded = [ImageOps.fit(image, (image_size, image_size),
                                method=Image.Resampling.BICUBIC)
                   for image in decoded]
    else:
        first = decoded[0].size
        odd = next((j for j, image in enumerate(decoded)
                    if image.size != first), None)
        if odd is not None:
            raise ValueError(
                f"The images differ in size: {files[kept[0]]} is "
                f"{first[0]}x{first[1]} but {files[kept[odd]]} is "
                f"{decoded[odd].size[0]}x{decoded[odd].size[1]}. Pass "
                "image_size to crop and resize them all to one square "
                "size.")

    images = np.stack([np.asarray(image, np.uint8) for image in decoded])
    if images.ndim == 3:
        images = images[..., np.newaxis]
    return images, np.asarray(kept, np.int64)


def _images_from_npz(path):
    """Returns the images of an .npz file, checked, as uint8 [N, H, W, C]."""
    try:
        with np.load(path) as npz:
            if not npz.files:
                raise ValueError(
                    f"{path} holds no arrays; save the images in it.")
            key = "images" if "images" in npz.files else npz.files[0]
            images = npz[key]
    except (OSError, EOFError) as error:
        raise ValueError(
            f"{path} is not a readable .npz file ({error}).") from None
    return _check_image_array(images, f"{path} (array {key!r})")


def _split_indices(num, test_fraction, seed):
    """Draws a reproducible held-out share of `num` elements.

    Returns:
      (train, test): sorted int64 index arrays that together cover
      0..num-1, `test` holding round(num * test_fraction) of them, chosen
      by `seed`.
    """
    num_test = int(round(num * test_fraction))
    order = np.random.default_rng(seed).permutation(num)
    return np.sort(order[num_test:]), np.sort(order[:num_test])


def _from_tfds(name, data_dir, grayscale, image_size, test_fraction, seed,
               tried):
    """Loads a TFDS image data set, prepared or downloaded.

    Returns None, after adding each failure to `tried`, when TFDS cannot
    provide it.
    """
    # Imported here: it is slow to import and only this source needs it.
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    where = data_dir or "TFDS's default data directory"
    attempts = (
        (f"a prepared TFDS data set '{name}' in {where}", {"download": False}),
        (f"a TFDS download of '{name}'", {}),
    )
    for description, options in attempts:
        if options.get("download", True):
            problem = _network_problem()
            if problem:
                tried.append(f"{description} (not tried: {problem})")
                break
        try:
            splits, info = tfds.load(name, split=None, data_dir=data_dir,
                                     with_info=True, **options)
        except Exception as error:  # pylint: disable=broad-except
            # TFDS fails in many ways (files missing, no network, unknown
            # name); each only means that this source lacks the data.
            tried.append(f"{description} ({_one_line(error)})")
            if isinstance(error, tfds.core.DatasetNotFoundError):
                break
            continue
        return _from_tfds_splits(name, splits, info, grayscale, image_size,
                                 test_fraction, seed)
    return None


def _from_tfds_splits(name, splits, info, grayscale, image_size,
                      test_fraction, seed):
    """Turns the splits that tfds.load returns into an ImageData.

    Args:
      name: the TFDS name, for messages.
      splits: dict split name -> tf.data.Dataset of feature dicts.
      info: the tfds.core.DatasetInfo.
      grayscale, image_size, test_fraction, seed: as in `load`.
    """
    features = info.features
    if "image" not in features or "train" not in splits:
        raise ValueError(
            f"TFDS data set '{name}' has features {list(features)} and "
            f"splits {list(splits)}; this pipeline needs an 'image' feature "
            "and a 'train' split.")

    feature = features["image"]
    height, width, channels = tuple(feature.shape)
    # `tf_dtype`: TFDS warns that `dtype` is deprecated.
    if feature.tf_dtype != tf.uint8 or channels not in (1, 3):
        raise ValueError(
            f"TFDS data set '{name}' has images of type "
            f"{feature.tf_dtype.name} and shape {feature.shape}; this "
            "pipeline needs uint8 with 1 or 3 channels.")
    if image_size is None and (height is None or width is None):
        raise ValueError(
            f"TFDS data set '{name}' has images of varying size "
            f"{feature.shape}; pass image_size to crop and resize them.")

    if image_size is not None:
        height = width = image_size
    if grayscale:
        channels = 1
    image_shape = (height, width, channels)
    has_label = "label" in features
    num_classes = int(features["label"].num_classes) if has_label else 0

    def element(example):
        image = _adjust_images(example["image"], grayscale, image_size)
        if has_label:
            label = tf.cast(example["label"], tf.int32)
        else:
            label = tf.constant(0, tf.int32)
        return {"image": tf.ensure_shape(image, image_shape), "label": label}

    train = splits["train"]
    num_train = _num_examples(train, info, "train")
    if "test" in splits:
        test = splits["test"]
        num_test = _num_examples(test, info, "test")
    else:
        train, test, num_train, num_test = _carve_test(
            train, num_train, test_fraction, seed)

    return ImageData(
        train=train.map(element, num_parallel_calls=tf.data.AUTOTUNE),
        test=test.map(element, num_parallel_calls=tf.data.AUTOTUNE),
        image_shape=image_shape,
        num_classes=num_classes,
        num_train=num_train,
        num_test=num_test,
        source=f"TFDS data set '{name}' in {info.data_dir}")


def _num_examples(dataset, info, split):
    """Returns the size of a TFDS split, from tf.data or else from info."""
    size = int(dataset.cardinality())
    return size if size >= 0 else int(info.splits[split].num_examples)


def _carve_test(train, num_train, test_fraction, seed):
    """Holds out a share of a data set, drawn as _split_indices draws it.

    Returns:
      (train, test, num_train, num_test): the two data sets keep the
      original order and have a known cardinality.
    """
    _, test_indices = _split_indices(num_train, test_fraction, seed)
    in_test = np.zeros(num_train, bool)
    in_test[test_indices] = True
    in_test = tf.constant(in_test)
    num_test = len(test_indices)

    def part(want_test, size):
        subset = train.enumerate().filter(
            lambda i, _: tf.equal(tf.gather(in_test, i), want_test))
        subset = subset.map(lambda _, example: example)
        return subset.apply(tf.data.experimental.assert_cardinality(size))

    return (part(False, num_train - num_test), part(True, num_test),
            num_train - num_test, num_test)


def _network_problem():
    """Why a download cannot work here, or None if it may.

    Behind a proxy (set in the environment) the proxy decides, so no
    connection is tried.
    """
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None
    try:
        socket.create_connection(_DOWNLOAD_PROBE, timeout=5).close()
    except OSError as error:
        host, port = _DOWNLOAD_PROBE
        return f"no network: cannot connect to {host}:{port}, {error}"
    return None


def _one_line(error):
    """Returns the type and first line of an exception, in 200 chars."""
    lines = str(error).strip().splitlines()
    text = type(error).__name__
    if lines:
        text += ": " + lines[0]
    return text if len(text) <= 200 else text[:197] + "..."


def _no_source_message(name, tried):
    """Builds the one-paragraph message of DataSourceError."""
    return (
        f"Could not load the data set {str(name)!r}: no source has it. "
        "Tried " + "; ".join(tried) + ". To provide it, do one of these: "
        "for MNIST or Fashion-MNIST, put the four IDX files "
        "(train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, gzipped or not) "
        "in a directory and pass it as data_dir (--data_dir on the command "
        "line), or put them in $PIXELCNNPP_DATA_DIR/<name>; for "
        "Fashion-MNIST on Debian, run `apt-get install "
        "dataset-fashion-mnist`; for a TFDS data set, prepare it once where "
        "TFDS can download and pass its data directory as data_dir; or "
        "pass the path of a folder of images (one subfolder per class) as "
        "the data set name.")

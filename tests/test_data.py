"""Tests of pixelcnnpp.data: real MNIST files and small files made here."""

import gzip
import pathlib
import socket
import types

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from pixelcnnpp import data

# CI clones the repository into some folder with `shared/` beside it.
MNIST_DIR = pathlib.Path(__file__).resolve().parents[1].parent / (
    "shared/data/mnist")
FASHION_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")

# Published per-digit counts of the MNIST training and test sets.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851,
                      5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255,) * 3


def write_idx(path, array, compress=False):
    """Writes `array` as an IDX file: zero, zero, type, rank, dims, data."""
    codes = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09,
             np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C,
             np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    dims = np.asarray(array.shape, ">u4").tobytes()
    body = array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + dims + body)


def write_tiny_idx_set(directory, compress=True):
    """Writes a 5-train, 3-test MNIST-like set of 6x6 images.

    Image i is all i * 10, label i % 10, so each is easy to recognise.
    """
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for prefix, start, num in (("train", 0, 5), ("t10k", 5, 3)):
        values = np.arange(start, start + num, dtype=np.uint8)
        images = np.broadcast_to(values[:, None, None] * 10, (num, 6, 6))
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}",
                  np.ascontiguousarray(images), compress)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}",
                  values % 10, compress)


def save_image(path, colour, size=(8, 8)):
    """Saves a single-colour image; the format follows the file suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "L" if isinstance(colour, int) else "RGB"
    Image.new(mode, size, colour).save(path)


def make_class_folder(root, per_class=10):
    """Makes root/cats (red PNGs) and root/dogs (blue JPEGs), 8x8 each.

    The images of a class differ in brightness, 100 + 10 * i, so that each
    can be told apart after loading, even from a lossy JPEG.
    """
    for i in range(per_class):
        level = 100 + 10 * i
        save_image(root / "cats" / f"{i:02d}.png", (level, 0, 0))
        save_image(root / "dogs" / f"{i:02d}.jpg", (0, 0, level))
    return root


def elements(dataset):
    """Returns all images and labels of an unbatched data set as arrays."""
    batch = next(iter(data.batches(dataset, 100000)))
    return batch["image"].numpy(), batch["label"].numpy()


def identities(dataset):
    """Returns {(label, level / 10)} of the images of make_class_folder."""
    images, labels = elements(dataset)
    levels = np.round(images.max(axis=(1, 2, 3)) / 10.0).astype(int)
    return {(int(label), int(level)) for label, level in zip(labels, levels)}


@pytest.fixture(scope="module")
def mnist():
    assert MNIST_DIR.is_dir(), (
        f"MNIST IDX files expected in {MNIST_DIR} (shared/ beside the "
        "repository)")
    return data.load("mnist", data_dir=MNIST_DIR)


@pytest.fixture
def no_tfds(monkeypatch):
    """Makes every tfds.load fail at once, as if the network failed after
    the check that it is there, and records the calls."""
    monkeypatch.setattr(data, "_network_problem", lambda: None)
    calls = []

    def fail(name, **kwargs):
        calls.append(kwargs)
        raise RuntimeError(f"no network for {name}\nsecond line")

    monkeypatch.setattr(tfds, "load", fail)
    return calls


def test_mnist_from_shared_idx_files(mnist):
    assert (mnist.num_train, mnist.num_test) == (60000, 10000)
    assert mnist.image_shape == (28, 28, 1)
    assert mnist.num_classes == 10
    assert mnist.train.element_spec["image"].dtype == tf.uint8
    assert mnist.train.element_spec["label"].dtype == tf.int32

    test_images, test_labels = elements(mnist.test)
    assert test_images.shape == (10000, 28, 28, 1)
    assert test_labels[0] == 7
    assert test_images.min() == 0 and test_images.max() == 255
    assert np.bincount(test_labels).tolist() == MNIST_TEST_COUNTS

    train_images, train_labels = elements(mnist.train)
    assert train_images.shape == (60000, 28, 28, 1)
    assert train_labels[0] == 5
    assert np.bincount(train_labels).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(train_labels).sum() == 60000


def test_mnist_found_beside_repository_without_data_dir(monkeypatch,
                                                         tmp_path):
    # From elsewhere, ../shared/data/mnist does not exist: only the place
    # relative to the repository root can find the files.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIXELCNNPP_DATA_DIR", raising=False)

    loaded = data.load("mnist")

    assert loaded.source == f"IDX files in {MNIST_DIR}"
    assert loaded.num_test == 10000


@pytest.mark.skipif(not FASHION_DIR.is_dir(),
                    reason=f"{FASHION_DIR} absent; it comes from "
                    "`apt-get install dataset-fashion-mnist`")
def test_fashion_mnist_from_debian_package(monkeypatch):
    monkeypatch.delenv("PIXELCNNPP_DATA_DIR", raising=False)

    fashion = data.load("fashion_mnist")

    assert fashion.source == f"IDX files in {FASHION_DIR}"
    assert (fashion.num_train, fashion.num_test) == (60000, 10000)
    assert fashion.image_shape == (28, 28, 1)
    first = next(iter(fashion.test))
    assert first["label"].numpy() == 9  # an ankle boot
    assert first["image"].dtype == tf.uint8


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("array", [
    np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
    np.array([[-300, 7], [32767, -32768]], np.int16),
    np.array([1.5, -2.25, 1e30], np.float32),
])
def test_read_idx_gives_back_what_was_written(tmp_path, array, compress):
    path = tmp_path / ("array.idx.gz" if compress else "array.idx")
    write_idx(path, array, compress)

    read = data.read_idx(path)

    assert read.dtype == array.dtype
    np.testing.assert_array_equal(read, array)


def test_read_idx_rejects_bad_files(tmp_path):
    not_idx = tmp_path / "notes.txt"
    not_idx.write_text("hello, world")
    with pytest.raises(ValueError, match="notes.txt is not an IDX file"):
        data.read_idx(not_idx)

    truncated = tmp_path / "short-idx3-ubyte"
    write_idx(truncated, np.zeros((4, 5, 5), np.uint8))
    truncated.write_bytes(truncated.read_bytes()[:-7])
    with pytest.raises(ValueError, match="truncated or damaged"):
        data.read_idx(truncated)


def test_idx_directory_as_name_with_resize(tmp_path):
    idx_dir = tmp_path / "tiny"
    write_tiny_idx_set(idx_dir, compress=False)

    loaded = data.load(str(idx_dir), image_size=4)

    assert loaded.image_shape == (4, 4, 1)
    assert (loaded.num_train, loaded.num_test) == (5, 3)
    images, labels = elements(loaded.test)
    assert labels.tolist() == [5, 6, 7]
    # Resizing a uniform image keeps its value exactly.
    assert images.dtype == np.uint8
    assert images[:, :, :, 0].tolist() == [
        np.full((4, 4), v).tolist() for v in (50, 60, 70)]


def test_idx_files_found_through_environment_variable(monkeypatch,
                                                      tmp_path):
    write_tiny_idx_set(tmp_path / "mnist")
    monkeypatch.setenv("PIXELCNNPP_DATA_DIR", str(tmp_path))

    loaded = data.load("mnist")

    assert loaded.source == f"IDX files in {tmp_path / 'mnist'}"
    assert (loaded.num_train, loaded.num_test) == (5, 3)
    assert elements(loaded.train)[1].tolist() == [0, 1, 2, 3, 4]


def test_folder_with_class_subfolders(tmp_path):
    root = make_class_folder(tmp_path / "pets")

    loaded = data.load(str(root), test_fraction=0.25, seed=0)

    assert loaded.num_classes == 2
    assert loaded.image_shape == (8, 8, 3)
    assert (loaded.num_train, loaded.num_test) == (15, 5)
    images, labels = elements(loaded.train)
    assert images.dtype == np.uint8 and labels.dtype == np.int32
    # Cats (label 0, sorted first) are red, dogs (label 1) blue.
    red, blue = images[..., 0].mean((1, 2)), images[..., 2].mean((1, 2))
    assert np.all((red > blue) == (labels == 0))
    everything = {(label, 10 + i) for label in (0, 1) for i in range(10)}
    assert identities(loaded.train) | identities(loaded.test) == everything


def test_folder_split_is_reproducible_by_seed(tmp_path):
    root = make_class_folder(tmp_path / "pets")

    first = data.load(str(root), test_fraction=0.25, seed=3)
    again = data.load(str(root), test_fraction=0.25, seed=3)
    other = data.load(str(root), test_fraction=0.25, seed=4)

    assert identities(first.test) == identities(again.test)
    assert identities(first.test) != identities(other.test)
    assert len(identities(other.test)) == 5


def test_folder_resize_and_differing_sizes(tmp_path):
    save_image(tmp_path / "mixed" / "a.png", GREEN, size=(8, 8))
    save_image(tmp_path / "mixed" / "b.png", GREEN, size=(12, 6))

    with pytest.raises(ValueError, match="differ in size.*image_size"):
        data.load(str(tmp_path / "mixed"))

    loaded = data.load(str(tmp_path / "mixed"), image_size=4,
                       test_fraction=0.0)
    assert loaded.image_shape == (4, 4, 3)
    assert loaded.num_classes == 0
    images, labels = elements(loaded.train)
    assert images.shape == (2, 4, 4, 3)
    assert np.all(images == GREEN)
    assert labels.tolist() == [0, 0]


def test_folder_grayscale(tmp_path):
    save_image(tmp_path / "colour" / "red.png", RED)
    save_image(tmp_path / "colour" / "white.png", WHITE)
    save_image(tmp_path / "grey" / "a.png", 30)
    save_image(tmp_path / "grey" / "b.png", 200)

    converted = data.load(str(tmp_path / "colour"), grayscale=True,
                          test_fraction=0.0)
    native = data.load(str(tmp_path / "grey"), test_fraction=0.0)

    assert converted.image_shape == (8, 8, 1)
    # ITU-R 601 luma: 0.299 * 255 rounds down to 76.
    assert elements(converted.train)[0].max(axis=(1, 2, 3)).tolist() == [
        76, 255]
    # All images grey: one channel without asking.
    assert native.image_shape == (8, 8, 1)
    assert sorted(np.unique(elements(native.train)[0])) == [30, 200]


def test_corrupt_files_are_named_or_skipped(tmp_path, caplog):
    root = make_class_folder(tmp_path / "pets", per_class=3)
    (root / "dogs" / "garbage.png").write_bytes(b"this is no PNG")
    truncated = root / "cats" / "truncated.png"
    Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    ).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])

    with pytest.raises(ValueError) as error:
        data.load(str(root))
    assert "truncated.png" in str(error.value)
    # The way out, for command-line and for Python users.
    assert "--skip_bad_files" in str(error.value)
    assert "skip_bad_files=True" in str(error.value)

    with caplog.at_level("WARNING"):
        loaded = data.load(str(root), skip_bad_files=True, test_fraction=0.0)
    assert loaded.num_train == 6
    assert elements(loaded.train)[1].tolist() == [0, 0, 0, 1, 1, 1]
    assert "truncated.png" in caplog.text
    assert "garbage.png" in caplog.text


def test_nothing_found_names_every_place_tried(tmp_path, monkeypatch,
                                               no_tfds):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nowhere"

    with pytest.raises(data.DataSourceError) as error:
        data.load("mnist", data_dir=missing)

    message = str(error.value)
    assert "\n" not in message
    assert f"{missing} (no such directory)" in message
    assert f"{missing / 'mnist'} (no such directory)" in message
    assert f"a folder of images at {tmp_path / 'mnist'}" in message
    assert "RuntimeError: no network for mnist" in message
    assert "second line" not in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert error.value.__cause__ is None
    assert error.value.__suppress_context__
    # The prepared directory first, without download; then a download.
    assert [call.get("download", True) for call in no_tfds] == [False, True]
    assert all(call["data_dir"] == missing for call in no_tfds)


def test_no_download_is_tried_offline(tmp_path, monkeypatch):
    """Without a connection, only the prepared TFDS directory is looked
    at, and the message says why no download was tried."""
    def refuse(address, timeout):
        assert address == data._DOWNLOAD_PROBE and timeout <= 10
        raise OSError("Name or service not known")

    for name in data._PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(socket, "create_connection", refuse)
    calls = []

    def fail(name, **kwargs):
        calls.append(kwargs)
        raise RuntimeError(f"{name} is not prepared")

    monkeypatch.setattr(tfds, "load", fail)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(data.DataSourceError) as error:
        data.load("cifar10", data_dir=tmp_path / "tfds")
    assert [call.get("download", True) for call in calls] == [False]
    message = str(error.value)
    assert ("a TFDS download of 'cifar10' (not tried: no network: cannot "
            "connect to storage.googleapis.com:443, Name or service not "
            "known)") in message
    assert "prepare it once where TFDS can download" in message

    # Behind a proxy the download is left to TFDS.
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    calls.clear()
    with pytest.raises(data.DataSourceError):
        data.load("cifar10", data_dir=tmp_path / "tfds")
    assert [call.get("download", True) for call in calls] == [False, True]


def test_tfds_source_carves_test_split_and_converts(monkeypatch, caplog):
    images = np.zeros((10, 6, 6, 3), np.uint8)
    images[..., 0] = 255  # red
    images[:, 0, 0, :] = np.arange(10)[:, None]  # marks each image
    info = types.SimpleNamespace(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(6, 6, 3)),
            "label": tfds.features.ClassLabel(num_classes=3),
        }),
        splits={},
        data_dir="/prepared/toy/1.0.0")
    train = tf.data.Dataset.from_tensor_slices(
        {"image": images, "label": np.arange(10, dtype=np.int64) % 3})

    def fake_load(name, **kwargs):
        assert kwargs["download"] is False
        return {"train": train}, info

    monkeypatch.setattr(tfds, "load", fake_load)

    with caplog.at_level("WARNING"):
        loaded = data.load("toy", grayscale=True, test_fraction=0.2, seed=1)
    # The image feature's dtype is read without TFDS's deprecated field.
    assert "deprecated" not in caplog.text

    assert loaded.image_shape == (6, 6, 1)
    assert (loaded.num_train, loaded.num_test, loaded.num_classes) == (
        8, 2, 3)
    train_images, train_labels = elements(loaded.train)
    test_images, _ = elements(loaded.test)
    assert train_images.dtype == np.uint8 and train_labels.dtype == np.int32
    assert train_images[0, 3, 3, 0] == 76  # red through rgb_to_grayscale
    ids = np.concatenate([train_images, test_images])[:, 0, 0, 0]
    assert sorted(ids.tolist()) == list(range(10))
    assert loaded.train.cardinality().numpy() == 8


def test_tfds_images_other_than_uint8_are_refused(monkeypatch):
    info = types.SimpleNamespace(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(6, 6, 1), dtype=np.uint16),
        }),
        splits={},
        data_dir="/prepared/deep/1.0.0")
    train = tf.data.Dataset.from_tensor_slices(
        {"image": np.zeros((4, 6, 6, 1), np.uint16)})
    monkeypatch.setattr(tfds, "load", lambda name, **kwargs: (
        {"train": train}, info))

    with pytest.raises(ValueError, match=r"type uint16 and shape \(6, 6, "
                       r"1\); this pipeline needs uint8"):
        data.load("deep")


def test_batches_keep_every_element_for_evaluation():
    dataset = tf.data.Dataset.range(10)

    sizes = [len(b) for b in data.batches(dataset, 4)]
    dropped = [len(b) for b in data.batches(dataset, 4, drop_remainder=True)]

    assert sizes == [4, 4, 2]
    assert dropped == [4, 4]


def test_batches_shuffle_is_seeded_and_new_each_epoch():
    dataset = tf.data.Dataset.range(50)

    shuffled = data.batches(dataset, 50, shuffle=True, seed=7)
    epoch1, epoch2 = [next(iter(shuffled)).numpy().tolist()
                      for _ in range(2)]
    again = next(iter(data.batches(dataset, 50, shuffle=True, seed=7)))
    endless = data.batches(dataset, 8, shuffle=True, repeat=True)

    assert sorted(epoch1) == list(range(50))
    assert epoch1 != list(range(50))
    assert epoch1 != epoch2
    assert again.numpy().tolist() == epoch1
    assert len(list(endless.take(20))) == 20


def test_batches_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(tf.data.Dataset.range(3), 0)


def test_load_images_from_directory(tmp_path):
    save_image(tmp_path / "score" / "b.png", BLUE, size=(5, 5))
    save_image(tmp_path / "score" / "a.png", RED, size=(5, 5))
    save_image(tmp_path / "score" / "more" / "c.png", WHITE, size=(5, 5))

    images = data.load_images(tmp_path / "score")
    small = data.load_images(tmp_path / "score", image_size=2,
                             grayscale=True)

    assert images.dtype == np.uint8 and images.shape == (3, 5, 5, 3)
    assert [tuple(image[2, 2]) for image in images] == [
        RED, BLUE, WHITE]
    assert small.shape == (3, 2, 2, 1)
    assert small[:, 0, 0, 0].tolist() == [76, 29, 255]


def test_load_images_from_npz(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 3, 3, 3),
                                               np.uint8)
    np.savez(tmp_path / "keyed.npz", other=np.zeros(2), images=images)
    np.savez(tmp_path / "plain.npz", images[..., 0].astype(np.int64))
    np.savez(tmp_path / "floats.npz", images=images / 255.0)

    keyed = data.load_images(tmp_path / "keyed.npz")
    plain = data.load_images(tmp_path / "plain.npz")
    grey = data.load_images(tmp_path / "keyed.npz", grayscale=True)

    np.testing.assert_array_equal(keyed, images)
    assert plain.dtype == np.uint8
    np.testing.assert_array_equal(plain, images[..., :1])
    expected = tf.image.rgb_to_grayscale(images).numpy()
    np.testing.assert_array_equal(grey, expected)
    with pytest.raises(ValueError, match="floats.npz.*uint8"):
        data.load_images(tmp_path / "floats.npz")

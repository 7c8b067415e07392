"""Image readers: the digits split, IDX files written here byte by byte, and each malformed file."""

import gzip
import struct
import sys

import numpy as np
import pytest

from dlnref.errors import InputError
from dlnref.nn import images


def _idx_bytes(array, code=0x08):
    """IDX bytes written by hand from the format: 0, 0, type code, ndim, big-endian sizes, data."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_dir(path, n_train=7, n_test=5, rows=3, cols=4, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    parts = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in parts.items():
        data = _idx_bytes(array)
        if gz:
            (path / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (path / name).write_bytes(data)
    return parts


@pytest.mark.parametrize("gz", [False, True])
def test_idx_directory_round_trip(tmp_path, gz):
    parts = _write_dir(tmp_path, gz=gz)
    data = images.load_idx_dir(tmp_path)
    np.testing.assert_array_equal(data.train_images, parts["train-images-idx3-ubyte"].reshape(7, 12) / 255)
    np.testing.assert_array_equal(data.test_images, parts["t10k-images-idx3-ubyte"].reshape(5, 12) / 255)
    np.testing.assert_array_equal(data.train_labels, parts["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.test_labels, parts["t10k-labels-idx1-ubyte"])
    assert data.train_labels.dtype == np.int64
    assert data.classes == 1 + max(parts["train-labels-idx1-ubyte"].max(), parts["t10k-labels-idx1-ubyte"].max())


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_and_read_idx_agree_with_the_byte_layout(tmp_path, dtype, suffix):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = tmp_path / f"a.idx{suffix}"
    images.write_idx(path, array)
    raw = path.read_bytes()
    code = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}[dtype]
    assert (gzip.decompress(raw) if suffix else raw) == _idx_bytes(array, code)
    back = images.read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("content, message", [
    (b"", r"bad IDX magic number \(empty file\)"),
    (b"\x08\x03\x00\x00" + b"\x00" * 20, "bad IDX magic number 08030000"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "bad IDX magic number 00000701"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "announces 3 dimensions but the file ends after 8 bytes"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05" + b"\x01" * 4, r"counts \(5,\) need 5 bytes of data, but the file holds 4"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x02" + b"\x01" * 3, r"counts \(2,\) need 2 bytes of data, but the file holds 3"),
])
def test_malformed_idx_files_are_named(tmp_path, content, message):
    path = tmp_path / "broken-idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as error:
        images.read_idx(path)
    assert str(path) in str(error.value)


def test_corrupt_gzip_is_named(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a readable gzip file") as error:
        images.read_idx(path)
    assert str(path) in str(error.value)


def test_labels_and_images_of_different_lengths(tmp_path):
    _write_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(4, dtype=np.uint8)))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte holds 4 labels but .*t10k-images-idx3-ubyte holds 5"):
        images.load_idx_dir(tmp_path)


def test_images_of_the_wrong_shape_or_type(tmp_path):
    _write_dir(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((7, 12), dtype=np.uint8)))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: expected unsigned-byte images .* shape \(7, 12\)"):
        images.load_idx_dir(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((7, 3, 4), dtype=np.float32), 0x0D))
    with pytest.raises(ValueError, match="expected unsigned-byte images of shape .*got float32"):
        images.load_idx_dir(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((7, 3, 4), dtype=np.uint8)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros((7, 1), dtype=np.uint8)))
    with pytest.raises(InputError, match=r"train-labels-idx1-ubyte: expected at least one unsigned-byte label, of "
                                         r"shape \(n,\), got uint8 of shape \(7, 1\)"):
        images.load_idx_dir(tmp_path)


@pytest.mark.parametrize("name, array, code, fragment", [
    ("train-labels-idx1-ubyte", np.full(7, np.nan), 0x0E, "expected at least one unsigned-byte label"),
    ("train-labels-idx1-ubyte", np.zeros(0, dtype=np.uint8), 0x08, "got uint8 of shape (0,)"),
    ("train-images-idx3-ubyte", np.zeros((7, 0, 0), dtype=np.uint8), 0x08, "each at least 1, got uint8 of shape (7, 0, 0)"),
])
def test_nan_labels_and_empty_images_are_named(tmp_path, name, array, code, fragment):
    _write_dir(tmp_path)
    (tmp_path / name).write_bytes(_idx_bytes(array, code))
    with pytest.raises(InputError) as info:
        images.load_idx_dir(tmp_path)
    assert str(info.value).startswith(str(tmp_path / name)) and fragment in str(info.value)


def test_an_empty_file_and_a_file_for_the_folder_are_named(tmp_path):
    _write_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(InputError, match=r"t10k-labels-idx1-ubyte: bad IDX magic number \(empty file\)"):
        images.load_idx_dir(tmp_path)
    with pytest.raises(InputError, match=r"t10k-labels-idx1-ubyte is a file, not a folder: give the folder"):
        images.load_idx_dir(tmp_path / "t10k-labels-idx1-ubyte")


def test_missing_files_and_directory(tmp_path):
    _write_dir(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\[.gz\] is missing"):
        images.load_idx_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        images.load_idx_dir(tmp_path / "nowhere")


def test_digits_split_is_stratified_fixed_and_seeded():
    data = images.load_digits()
    from sklearn.datasets import load_digits

    counts = np.bincount(load_digits().target)
    held_out = int(np.sum(np.round(0.2 * counts)))
    assert data.train_images.shape == (1797 - held_out, 64) and data.test_images.shape == (held_out, 64)
    assert data.train_images.min() == 0.0 and data.train_images.max() == 1.0
    np.testing.assert_array_equal(np.bincount(data.test_labels), np.round(0.2 * counts))
    np.testing.assert_array_equal(np.bincount(data.train_labels) + np.bincount(data.test_labels), counts)
    again = images.load_digits()
    np.testing.assert_array_equal(again.test_images, data.test_images)
    other = images.load_digits(seed=1)
    assert not np.array_equal(other.test_images, data.test_images)


def test_split_partitions_the_indices():
    labels = np.repeat([0, 1, 2], [10, 5, 1])
    train, test = images.stratified_split(labels, 0.4, seed=0)
    assert sorted(np.concatenate([train, test])) == list(range(16))
    np.testing.assert_array_equal(np.bincount(labels[test], minlength=3), [4, 2, 0])
    with pytest.raises(ValueError, match="test_fraction must be < 1"):
        images.stratified_split(labels, 1.0)


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r'pip install "dlnref\[nn\]"'):
        images.load_digits()

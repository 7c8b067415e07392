"""Labelled images for the MLP: scikit-learn's 8x8 digits, and MNIST-format IDX files.

Both loaders return an :class:`ImageSet` of host arrays: images as rows of
pixels scaled to ``[0, 1]``, integer labels, and a train/test split. Nothing is
downloaded.
"""

import dataclasses
import gzip
import math
import os
import zlib

import numpy as np

from .._checks import as_generator, check_fraction
from ..errors import InputError

#: IDX type codes (the third byte of the magic number) -> big-endian NumPy dtype.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
#: Most dimensions of an IDX file that dlnref reads (images are 3-D, labels 1-D).
MAX_IDX_DIMS = 4
#: The four files of an MNIST-format directory, by role; each may also end in ``.gz``.
IDX_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


class MissingDataError(FileNotFoundError, InputError):
    """A data file or folder is missing: a ``FileNotFoundError`` and an :class:`InputError` (exit 2 in the CLI)."""


@dataclasses.dataclass
class ImageSet:
    """A classification data set, split into train and test.

    Attributes
    ----------
    train_images, test_images : numpy.ndarray, shape (n, p)
        One image per row, ``p`` pixels in ``[0, 1]``, float64.
    train_labels, test_labels : numpy.ndarray of int, shape (n,)
    classes : int
    name : str
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: int
    name: str


def load_digits(test_fraction=0.2, seed=0):
    """scikit-learn's 8x8 handwritten digits (1,797 images, 64 pixels, 10 classes), split.

    Parameters
    ----------
    test_fraction : float in (0, 1)
        Share of each class held out (rounded per class).
    seed : int
        Seed of the split (:func:`stratified_split`); the default split is fixed.

    Returns
    -------
    ImageSet
        Pixels are the shipped 0..16 intensities divided by 16.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:
        raise ImportError('the digits data set needs scikit-learn: pip install "dlnref[nn]"') from error
    digits = sklearn_digits()
    images, labels = digits.data / 16.0, digits.target.astype(np.int64)
    train, test = stratified_split(labels, test_fraction, seed)
    return ImageSet(images[train], labels[train], images[test], labels[test], 10, "digits")


def stratified_split(labels, test_fraction, seed=0):
    """Indices of a seeded split that holds out ``round(test_fraction * n_k)`` of each class k.

    Returns
    -------
    train, test : numpy.ndarray of int
        Sorted indices into ``labels``.
    """
    test_fraction = check_fraction("test_fraction", test_fraction)
    if test_fraction >= 1:
        raise InputError(f"test_fraction must be < 1, got {test_fraction}")
    rng = as_generator(seed)
    labels = np.asarray(labels)
    test = []
    for k in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == k))
        test.extend(members[:round(test_fraction * members.size)])
    test = np.sort(np.asarray(test, dtype=np.int64))
    return np.setdiff1d(np.arange(labels.size), test), test


def read_idx(path):
    """Read one IDX file (``.gz`` or not) into a NumPy array.

    Format: two zero bytes, a type code (:data:`IDX_TYPES`), the number of
    dimensions ``k``, then ``k`` big-endian uint32 sizes, then the data in C order.

    Raises
    ------
    InputError
        Naming the file, for a bad magic number, a header that runs past the
        end, or a data size that disagrees with the header's counts.
    FileNotFoundError
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise InputError(f"{path}: not a readable gzip file ({error})") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        raise InputError(f"{path}: bad IDX magic number {raw[:4].hex() or '(empty file)'}; expected 0000 followed by "
                         f"a type code in {[f'{t:02x}' for t in IDX_TYPES]} and a dimension count >= 1")
    ndim, dtype = raw[3], np.dtype(IDX_TYPES[raw[2]])
    header = 4 + 4 * ndim
    if ndim > MAX_IDX_DIMS:
        raise InputError(f"{path}: the header announces {ndim} dimensions; an IDX file of images or labels has 1 to "
                         f"{MAX_IDX_DIMS}")
    if len(raw) < header:
        raise InputError(f"{path}: the header announces {ndim} dimensions but the file ends after {len(raw)} bytes")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize   # Python ints: no overflow
    if len(raw) - header != expected:
        raise InputError(f"{path}: the header's counts {shape} need {expected} bytes of data, "
                         f"but the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``), the inverse of :func:`read_idx`."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_TYPES.items()}
    if array.dtype not in codes or array.ndim < 1:
        raise InputError(f"array must be at least 1-D with a dtype in {sorted(map(str, codes))}, "
                         f"got {array.ndim}-D {array.dtype}")
    payload = (bytes([0, 0, codes[array.dtype], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
               + array.astype(array.dtype.newbyteorder(">")).tobytes())
    path = os.fspath(path)
    with (gzip.open if path.endswith(".gz") else open)(path, "wb") as f:
        f.write(payload)


def load_idx_dir(directory):
    """MNIST-format data (MNIST, FashionMNIST) from the four IDX files in ``directory``.

    Looks for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each possibly
    ending in ``.gz``. The shipped train/test split is kept.

    Returns
    -------
    ImageSet
        Pixels are the 0..255 intensities divided by 255, flattened to rows.

    Raises
    ------
    MissingDataError
        A ``FileNotFoundError`` (and :class:`InputError`) naming the missing file.
    InputError
        Naming the file: a file given for the folder, malformed IDX
        (:func:`read_idx`), images that are not 3-D unsigned bytes with at
        least one image, row and column, labels that are not 1-D unsigned
        bytes (at least one), or a label count that differs from the image count.
    """
    directory = os.fspath(directory)
    if os.path.isfile(directory):
        raise InputError(f"{directory} is a file, not a folder: give the folder that holds "
                         + ", ".join(IDX_FILES.values()) + " (each possibly .gz)")
    if not os.path.isdir(directory):
        raise MissingDataError(f"data directory {directory!r} does not exist")
    arrays = {}
    for role, name in IDX_FILES.items():
        path = _find(directory, name)
        array = read_idx(path)
        if role.endswith("images") and (array.ndim != 3 or array.dtype != np.uint8 or 0 in array.shape):
            raise InputError(f"{path}: expected unsigned-byte images of shape (n, rows, cols), each at least 1, "
                             f"got {array.dtype} of shape {array.shape}")
        if role.endswith("labels") and (array.ndim != 1 or array.dtype != np.uint8 or array.size == 0):
            raise InputError(f"{path}: expected at least one unsigned-byte label, of shape (n,), got {array.dtype} "
                             f"of shape {array.shape}")
        arrays[role] = (path, array)
    for part in ("train", "test"):
        (image_path, images), (label_path, labels) = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise InputError(f"{label_path} holds {labels.shape[0]} labels but {image_path} holds "
                             f"{images.shape[0]} images")
    (train_path, train_images), (test_path, test_images) = arrays["train_images"], arrays["test_images"]
    if train_images.shape[1:] != test_images.shape[1:]:
        raise InputError(f"{test_path} holds images of {test_images.shape[1]} x {test_images.shape[2]} pixels but "
                         f"{train_path} of {train_images.shape[1]} x {train_images.shape[2]}: the two must match")
    (_, train_x), (_, train_y), (_, test_x), (_, test_y) = (arrays[role] for role in IDX_FILES)
    classes = int(max(train_y.max(initial=0), test_y.max(initial=0))) + 1
    return ImageSet(_rows(train_x), train_y.astype(np.int64), _rows(test_x), test_y.astype(np.int64),
                    max(classes, 2), os.path.basename(os.path.normpath(directory)))


def _find(directory, name):
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            return path
    raise MissingDataError(f"{os.path.join(directory, name)}[.gz] is missing: an MNIST-format directory holds "
                            + ", ".join(IDX_FILES.values()) + " (each possibly .gz)")


def _rows(images):
    """``(n, rows, cols)`` bytes -> ``(n, rows * cols)`` float64 in [0, 1]."""
    return images.reshape(images.shape[0], -1) / 255.0

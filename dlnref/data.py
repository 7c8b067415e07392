"""Seeded synthetic data: low-rank targets, observation masks, sensing operators.

Every generator draws on the host with a ``numpy.random.Generator`` and then
moves the result to the requested backend, so one seed gives the same problem
on every backend.
"""

import dataclasses
import math
import os
from typing import NamedTuple

import numpy as np

from ._checks import as_generator, check_fraction, check_int
from .backend import to_backend
from .errors import InputError


def low_rank_matrix(m, n, rank, seed=0, spectrum="spread", backend=None):
    """Draw an ``(m, n)`` matrix of rank ``rank``.

    Parameters
    ----------
    m, n : int
        Shape of the matrix.
    rank : int
        Its rank r, with ``1 <= r <= min(m, n)``.
    seed : int or numpy.random.Generator
    spectrum : "spread" or sequence of float
        ``"spread"`` (the official code's choice): draw a Gaussian matrix
        ``Z`` with i.i.d. N(0, 1) entries, ``Z = U diag(s) V^T``, and keep the
        singular triplets at indices ``i_k = floor(k * min(m, n) / (2 r))``
        for k = 0..r-1, so the kept singular values are spread over the top
        half of the spectrum and are well separated (this needs
        ``2 r <= min(m, n)``). A sequence of r positive
        values gives ``U diag(values) V^T`` with Haar-random orthonormal
        ``U`` (m, r) and ``V`` (n, r).
    backend : str or None

    Returns
    -------
    array, shape (m, n)
    """
    m, n = check_int("m", m, 1), check_int("n", n, 1)
    rank = check_int("rank", rank, 1)
    if rank > min(m, n):
        raise InputError(f"rank must be <= min(m, n) = {min(m, n)} for a ({m}, {n}) matrix, got {rank}")
    rng = as_generator(seed)
    if isinstance(spectrum, str):
        if spectrum != "spread":
            raise InputError(f"spectrum must be 'spread' or a sequence of {rank} singular values, got {spectrum!r}")
        if 2 * rank > min(m, n):
            raise InputError(
                f"the spread spectrum needs 2 * rank <= min(m, n) = {min(m, n)}, got rank {rank}; "
                "pass explicit singular values as spectrum=[...] for a higher rank"
            )
        U, s, Vh = np.linalg.svd(rng.standard_normal((m, n)), full_matrices=False)
        keep = spread_indices(min(m, n), rank)
        U, s, Vh = U[:, keep], s[keep], Vh[keep, :]
    else:
        s = np.asarray(spectrum, dtype=np.float64)
        if s.shape != (rank,) or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise InputError(f"spectrum must hold {rank} finite positive singular values, got {spectrum!r}")
        U, Vh = haar_orthonormal(rng, m, rank), haar_orthonormal(rng, n, rank).T
    return to_backend((U * s) @ Vh, backend)


def problem_streams(seed):
    """The two random streams of a synthetic problem: ``(target, side)``, for its target and its mask or operators.

    Parameters
    ----------
    seed : int, numpy.random.SeedSequence, or a pair of numpy.random.Generator
        An int or a ``SeedSequence`` gives two independent child streams
        (``SeedSequence.spawn(2)``); a pair of generators is used as it is.

    Returns
    -------
    target, side : numpy.random.Generator
    """
    if isinstance(seed, tuple) and len(seed) == 2 and all(isinstance(s, np.random.Generator) for s in seed):
        return seed
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(check_int("seed", seed, 0))
    target, side = (np.random.default_rng(s) for s in seq.spawn(2))
    return target, side


def haar_orthonormal(rng, m, n):
    r"""Haar-random ``(m, n)`` matrix with orthonormal columns (m >= n) or rows (m < n).

    For a Gaussian ``Z`` of shape ``(max(m, n), min(m, n))``,

    .. math:: Z = QR, \qquad O = Q \operatorname{diag}(\operatorname{sign} R_{11}, \dots, \operatorname{sign} R_{nn})

    is Haar (Mezzadri, Notices AMS 2007). ``Q`` alone is not: LAPACK's sign
    convention for ``R`` biases it. The signs make ``Z = O (diag(sign R_ii) R)``
    the unique QR factorization with a positive diagonal, whose ``O`` is Haar.
    """
    Q, R = np.linalg.qr(rng.standard_normal((max(m, n), min(m, n))))
    Q = Q * np.sign(np.diag(R))  # column j times sign(R_jj): the unique QR with R_jj > 0, hence Haar
    return Q if m >= n else Q.T


def spread_indices(k, rank):
    """Indices ``floor(i * k / (2 rank))`` for i = 0..rank-1 (the official code's spread)."""
    return [math.floor(i * k / (2 * rank)) for i in range(rank)]


def random_mask(shape, fraction, seed=0, backend=None):
    """Observation mask with exactly ``floor(fraction * m * n)`` True entries.

    Parameters
    ----------
    shape : tuple of int
        ``(m, n)``.
    fraction : float in (0, 1]
        The observed fraction p.
    seed : int or numpy.random.Generator
    backend : str or None

    Returns
    -------
    array of bool, shape (m, n)
        The observed entries, drawn uniformly without replacement.
    """
    m, n = (check_int(f"shape[{i}]", s, 1) for i, s in enumerate(shape))
    fraction = check_fraction("fraction", fraction)
    count = math.floor(fraction * m * n)
    if count == 0:
        raise InputError(f"fraction={fraction} of a ({m}, {n}) matrix observes no entry; raise fraction")
    rng = as_generator(seed)
    mask = np.zeros(m * n, dtype=bool)
    mask[rng.choice(m * n, size=count, replace=False)] = True
    return to_backend(mask.reshape(m, n), backend)


def gaussian_operators(count, shape, seed=0, backend=None):
    """Sensing operators ``A_1, ..., A_count`` with i.i.d. N(0, 1/count) entries.

    Parameters
    ----------
    count : int
        Number of measurements m.
    shape : tuple of int
        ``(d1, d2)``, the shape of each ``A_i`` and of the target.
    seed : int or numpy.random.Generator
    backend : str or None

    Returns
    -------
    array, shape (count, d1, d2)

    Notes
    -----
    The entry standard deviation is ``1/sqrt(m)``, the standard choice for
    which ``E sum_i <A_i, X>^2 = ||X||_F^2``. The official code used ``1/m``;
    with it, the step sizes of the paper's sensing runs differ by a factor m.
    """
    count = check_int("count", count, 1)
    d1, d2 = (check_int(f"shape[{i}]", s, 1) for i, s in enumerate(shape))
    rng = as_generator(seed)
    return to_backend(rng.standard_normal((count, d1, d2)) / np.sqrt(count), backend)


#: Real matrices shipped with matplotlib's sample data.
SAMPLE_MATRICES = ("grace_hopper", "jacksboro_fault_dem")


def sample_matrix(name, downsample=1, backend=None):
    """A real, approximately low-rank matrix from matplotlib's sample data, scaled to [0, 1].

    Parameters
    ----------
    name : {"grace_hopper", "jacksboro_fault_dem"}
        ``grace_hopper``: the photograph ``grace_hopper.jpg`` in grayscale
        (mean of the RGB channels), 600 x 512. ``jacksboro_fault_dem``: the
        elevation map of ``jacksboro_fault_dem.npz``, 344 x 403.
    downsample : int
        Keep every ``downsample``-th row and column.
    backend : str or None

    Returns
    -------
    array, shape (m, n)
        ``(A - min A) / (max A - min A)``.
    """
    import matplotlib.cbook as cbook

    if name not in SAMPLE_MATRICES:
        raise InputError(f"name must be one of {SAMPLE_MATRICES}, got {name!r}")
    step = check_int("downsample", downsample, 1)
    if name == "grace_hopper":
        import matplotlib.pyplot as plt

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            image = plt.imread(f).astype(np.float64).mean(axis=2)
    else:
        image = cbook.get_sample_data("jacksboro_fault_dem.npz")["elevation"].astype(np.float64)
    image = image[::step, ::step]
    return to_backend((image - image.min()) / (image.max() - image.min()), backend)


class Entries(NamedTuple):
    """Entries ``values[k]`` at ``(rows[k], cols[k])`` of a matrix, 0-based.

    Attributes
    ----------
    rows, cols : numpy.ndarray of int64, shape (k,)
    values : numpy.ndarray of float64, shape (k,)
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray


def split_entries(entries, fraction, seed=0, name="entries"):
    """Split entries at random into ``(kept, held_out)``, holding out ``floor(fraction * k)``.

    Parameters
    ----------
    entries : Entries
    fraction : float in (0, 1)
    seed : int or numpy.random.Generator
    name : str
        What the entries are, for the message (say the ratings file's path).

    Returns
    -------
    kept, held_out : Entries

    Raises
    ------
    InputError
        When either part would be empty (too few entries for ``fraction``).
    """
    fraction = check_fraction("fraction", fraction)
    count = math.floor(fraction * len(entries.rows))
    if count == 0 or count == len(entries.rows):
        raise InputError(f"{name}: holding out a fraction {fraction:g} of its {len(entries.rows)} entries leaves an "
                         f"empty part; it needs at least {math.ceil(1 / min(fraction, 1 - fraction))} entries")
    held = np.zeros(len(entries.rows), dtype=bool)
    held[as_generator(seed).permutation(len(entries.rows))[:count]] = True
    return Entries(*(a[~held] for a in entries)), Entries(*(a[held] for a in entries))


@dataclasses.dataclass
class Ratings:
    """Ratings as observed entries of a users x items matrix (never a dense array).

    Attributes
    ----------
    shape : tuple of int
        ``(users, items)``: the largest user and item ids.
    train, test : Entries
        Disjoint training and held-out ratings, 0-based user and item indices.
    """

    shape: tuple
    train: Entries
    test: Entries


#: The train/test splits that MovieLens 100K ships next to ``u.data``.
MOVIELENS_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")

#: Largest user or item id accepted (MovieLens 25M has 162,541 users and 209,171 movie ids).
MAX_ID = 10_000_000

#: Characters of a malformed line quoted in the error message.
EXCERPT = 60


def load_movielens(path, split="random", test_fraction=0.2, seed=0):
    """Read MovieLens ratings into a :class:`Ratings` (nothing is downloaded).

    Parameters
    ----------
    path : str or os.PathLike
        The ratings file ``u.data``: one rating a line, tab-separated
        ``user item rating timestamp``, with 1-based user and item ids.
    split : "random" or one of "u1".."u5", "ua", "ub"
        ``"random"``: a seeded split holding out ``test_fraction`` of the
        ratings. A standard name reads ``<split>.base`` and ``<split>.test``
        from the folder of ``path`` (the splits that ship with the data set);
        users and items are numbered as in ``u.data``.
    test_fraction : float in (0, 1)
        Random split only.
    seed : int or numpy.random.Generator
        Random split only.

    Returns
    -------
    Ratings
        For :class:`dlnref.problems.sparse.SparseCompletion`; memory is ``O(ratings)``.

    Raises
    ------
    ValueError
        For a malformed line (naming the file and line number, quoting at most
        ``EXCERPT`` characters), a duplicate rating, an id above ``MAX_ID``, a
        missing split file, a split file with ids beyond ``path``'s or whose
        two files share a rating, or an unknown split.
    """
    if split != "random" and split not in MOVIELENS_SPLITS:
        raise InputError(f"split must be 'random' or one of {MOVIELENS_SPLITS}, got {split!r}")
    ratings = _read_ratings(path)
    if split == "random":
        train, test = split_entries(ratings, test_fraction, seed, name=f"{path} (a random test split)")
    else:
        folder = os.path.dirname(os.fspath(path))
        files = [_split_file(folder, f"{split}.{part}") for part in ("base", "test")]
        train, test = (_read_ratings(file) for file in files)
        _check_split(path, files, ratings, train, test)
    shape = tuple(int(max(e[axis].max() for e in (ratings, train, test))) + 1 for axis in (0, 1))
    return Ratings(shape, train, test)


def _check_split(path, files, ratings, train, test):
    """A shipped split's files rate only users and items of ``path``, and share no rating (one is held out)."""
    for file, part in zip(files, (train, test)):
        for axis, what in ((0, "user"), (1, "item")):
            if part[axis].max() > ratings[axis].max():
                raise InputError(f"{file} has {what} id {int(part[axis].max()) + 1}, above the largest of {path} "
                                 f"({int(ratings[axis].max()) + 1}): the split does not belong to this ratings file")
    n = int(max(train.cols.max(), test.cols.max())) + 1
    both = np.intersect1d(train.rows * n + train.cols, test.rows * n + test.cols)
    if both.size:
        raise InputError(f"{files[0]} and {files[1]} both hold {both.size} ratings (user {int(both[0] // n) + 1}, "
                         f"item {int(both[0] % n) + 1}, say): test ratings must be held out of training")


def _split_file(folder, name):
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise InputError(f"split file {path} is missing: the standard splits read <split>.base and <split>.test "
                         "next to u.data (use --split random for a seeded split)")
    return path


def _read_ratings(path):
    """Ratings as :class:`Entries` (0-based) from a MovieLens ratings file."""
    users, items, values, seen = [], [], [], set()
    if not os.path.isfile(path):   # a device or a pipe may never end
        raise InputError(f"{path} is not a regular file; give a ratings file such as MovieLens 100K's u.data")
    with open(path, encoding="latin-1") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            user, item, rating = _parse_rating(path, number, line)
            if (user, item) in seen:
                raise InputError(f"{path}, line {number}: user {user} rated item {item} twice")
            seen.add((user, item))
            users.append(user - 1)
            items.append(item - 1)
            values.append(rating)
    if not values:
        raise InputError(f"{path} holds no ratings")
    return Entries(np.array(users, dtype=np.int64), np.array(items, dtype=np.int64), np.array(values, dtype=np.float64))


def _parse_rating(path, number, line):
    """``(user, item, rating)`` from one line, or a ValueError naming the line and quoting its start."""
    fields = line.rstrip("\r\n").split("\t")
    valid = len(fields) == 4 and all(field.isascii() and field.isdigit() for field in fields[:3])   # no signs, spaces, _
    if valid:
        user, item, rating = (int(x) for x in fields[:3])
        valid = user >= 1 and item >= 1 and 1 <= rating <= 5
    if not valid:
        excerpt = line.rstrip("\r\n")
        excerpt = repr(excerpt[:EXCERPT]) + (f" ... ({len(excerpt)} characters)" if len(excerpt) > EXCERPT else "")
        raise InputError(f"{path}, line {number}: expected 'user<TAB>item<TAB>rating (1-5)<TAB>timestamp' "
                         f"with positive ids, got {excerpt}")
    if max(user, item) > MAX_ID:
        raise InputError(f"{path}, line {number}: user id {user} or item id {item} exceeds {MAX_ID:,}; "
                         "MovieLens ids are small consecutive integers, so this file is not a MovieLens ratings file")
    return user, item, rating

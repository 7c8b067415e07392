"""Golden files: dlnref's numbers on small fixed cases, for implementations without Python.

``dlnref golden export DIR`` writes one ``.npz`` per case and a
``manifest.json``; ``dlnref golden verify DIR`` checks every file's SHA-256,
then the config stored in each file, and recomputes every array. Any npz
reader can open the files: they hold only plain numeric and boolean arrays,
no pickles, no strings (``cnpy`` with a JSON parser such as nlohmann/json in
C++, ``NPZ.jl`` in Julia, ``numpy.load`` in Python).

Layout of ``<case>.npz`` (m x n target, L layers, T recorded steps)
--------------------------------------------------------------------
``target`` (m, n) float64; ``mask`` (m, n) bool, completion only;
``operators`` (k, m, n) float64, sensing only; ``steps`` (T,) int64, the
recorded steps; then for NET in ``wide`` and ``compressed``:
``NET_init_W{l}`` and ``NET_final_W{l}`` for l = 1..L, ``W_l`` of shape
``(d_l, d_{l-1})`` (input first, as everywhere in dlnref); ``NET_X`` (T, m, n),
the end-to-end matrix ``W_L ... W_1`` at each recorded step; ``NET_loss`` (T,),
the training loss there. ``config_json``: uint8, the UTF-8 bytes of a JSON
object ``{"config": ..., "conventions": ...}``, the same as in the manifest.

Replaying a case from its file alone
------------------------------------
Both networks, ``wide`` and ``compressed``, are trained by the same rule with
the same ``lr`` and ``outer_lr_scale`` from ``config`` (the wide network takes
the discrepant rate too): from ``NET_init_W1..WL``, take ``steps[-1]`` steps of
``W_l <- W_l - lr s_l dLoss/dW_l`` with ``s_1 = s_L = outer_lr_scale`` and
``s_l = 1`` otherwise, all layers updated from the same weights, with the loss
of ``conventions`` on ``target`` (and ``mask`` or ``operators``). ``NET_X[i]``
and ``NET_loss[i]`` are the values after ``steps[i]`` updates, and
``NET_final_W*`` the weights after the last. The init weights are stored, so
the seeds and the init rules are needed only to regenerate a case, not to
replay it.
"""

import contextlib
import hashlib
import json
import os
import zipfile

import numpy as np

from .._io import atomic_path
from ..compress import compress
from ..errors import InputError
from ..network import end_to_end, init_weights
from ..problems import problem_class
from ..train import DivergenceError, gradient_descent

FORMAT = 2
#: Recorded steps of every case.
STEPS = (0, 1, 2, 5, 10, 20, 50)
#: Relative tolerance of ``verify`` (against each array's largest entry): float64 rounding
#: after 50 steps, with room for another BLAS's order of summation.
VERIFY_RTOL = 1e-9

CONVENTIONS = {
    "layer_order": "weights = [W_1, ..., W_L], W_l of shape (d_l, d_{l-1}); X = W_L @ ... @ W_1",
    "update": "W_l <- W_l - lr * s_l * dLoss/dW_l, s_1 = s_L = outer_lr_scale, s_l = 1 otherwise",
    "factorization_loss": "||X - M||_F^2 / (2 m n); surrogate M",
    "completion_loss": "||mask * (X - M)||_F^2 / (2 |Omega|); surrogate mask * M / p, p = |Omega| / (m n)",
    "sensing_loss": "sum_i (<A_i, X> - <A_i, M>)^2 / 2, A_i entries N(0, 1/k); surrogate sum_i y_i A_i",
    "wide_init": "orthogonal: W_l = scale * Haar matrix with orthonormal rows or columns",
    "compressed_init": "W_1 = scale V_w^T, W_l = scale I_w, W_L = scale U_w, top-w singular vectors of the surrogate",
    "networks": "wide and compressed both train with the config's lr and outer_lr_scale, from NET_init_W1..WL",
}

#: The paper's three setups at small, non-square sizes (non-square so that a transpose shows).
CASES = {
    "factorization": {"problem": "factorization", "shape": [7, 5], "rank": 2, "depth": 3, "inner": 6,
                      "width": 4, "scale": 0.3, "lr": 3.0, "outer_lr_scale": 1.0, "seed": 0},
    "completion": {"problem": "completion", "shape": [8, 6], "rank": 2, "fraction": 0.5, "depth": 3, "inner": 6,
                   "width": 4, "scale": 0.3, "lr": 1.0, "outer_lr_scale": 2.0, "seed": 1},
    "sensing": {"problem": "sensing", "shape": [6, 5], "rank": 1, "measurements": 60, "depth": 4, "inner": 5,
                "width": 2, "scale": 0.4, "lr": 0.05, "outer_lr_scale": 1.5, "seed": 2},
}


def build_case(config):
    """The problem and both starting points of a golden case, from its config alone."""
    m, n = config["shape"]
    seeds = np.random.SeedSequence(config["seed"]).spawn(3)
    cls = problem_class(config["problem"])
    streams = (np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1]))   # the target's, the side's
    problem = cls.synthetic((m, n), config["rank"], seed=streams, **{o: config[o] for o in cls.options})
    dims = [n] + [config["inner"]] * (config["depth"] - 1) + [m]
    wide = init_weights(dims, config["scale"], seed=np.random.default_rng(seeds[2]))
    return problem, {"wide": wide, "compressed": compress(problem, config["depth"], config["width"], config["scale"])}


def compute_case(config):
    """Every array of a golden case, as a dict name -> numpy array."""
    problem, starts = build_case(config)
    arrays = {"target": problem.target, "steps": np.array(STEPS, dtype=np.int64)}
    for name in ("mask", "operators"):   # completion's, sensing's
        if hasattr(problem, name):
            arrays[name] = getattr(problem, name)
    for net, weights in starts.items():
        run = gradient_descent(problem, weights, config["lr"], STEPS[-1], outer_lr_scale=config["outer_lr_scale"],
                               record_every=1, blas_threads=None, observe=lambda step, w: {"X": end_to_end(w)})
        arrays[f"{net}_X"] = np.stack([run.history["X"][t] for t in STEPS])
        arrays[f"{net}_loss"] = np.array([run.history["loss"][t] for t in STEPS])
        for l, (w0, w1) in enumerate(zip(weights, run.weights), start=1):
            arrays[f"{net}_init_W{l}"] = w0
            arrays[f"{net}_final_W{l}"] = w1
    return arrays


def sha256(path):
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def export(directory):
    """Write every case and ``manifest.json`` into ``directory``, all or none of them; returns the manifest.

    Every file is first written whole under a temporary name; only when all
    are written do they replace their names, the manifest last. A failure
    before that (a full disk, Ctrl-C) leaves ``directory`` as it was, old
    golden files included.
    """
    from .. import __version__

    os.makedirs(directory, exist_ok=True)
    manifest = {"dlnref_version": __version__, "format": FORMAT, "conventions": CONVENTIONS,
                "recorded_steps": list(STEPS), "cases": {}}
    with contextlib.ExitStack() as files:   # each atomic_path replaces its file when the stack closes without error
        for name, config in CASES.items():
            arrays = compute_case(config)
            meta = {"config": config, "conventions": CONVENTIONS}
            tmp = files.enter_context(atomic_path(os.path.join(directory, f"{name}.npz")))
            with open(tmp, "wb") as f:
                np.savez(f, config_json=config_bytes(meta), **arrays)
            manifest["cases"][name] = {"file": f"{name}.npz", "sha256": sha256(tmp), "config": config,
                                       "arrays": {k: list(v.shape) for k, v in arrays.items()}}
    _write_json(os.path.join(directory, "manifest.json"), manifest)   # the cases are in place: the manifest last
    return manifest


def _write_json(path, value):
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(value, f, indent=1)


def config_bytes(meta):
    """``meta`` as JSON in UTF-8, a uint8 array (what ``config_json`` holds)."""
    return np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)


def read_config(array):
    """The JSON object stored in a ``config_json`` array of UTF-8 bytes."""
    return json.loads(np.asarray(array, dtype=np.uint8).tobytes().decode("utf-8"))


def read_manifest(directory):
    """The manifest of ``directory``, checked for the keys that ``verify`` reads.

    Raises
    ------
    InputError
        Naming ``manifest.json`` when it is missing, not JSON, lacks a key,
        holds one of the wrong type, or holds no case.
    """
    path = os.path.join(directory, "manifest.json")
    if not os.path.exists(path):
        raise InputError(f"{path} does not exist; write the golden files with: dlnref golden export {directory}")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (ValueError, RecursionError) as error:   # JSONDecodeError, UnicodeDecodeError, a 5000-digit number...
        raise InputError(f"{path} is not valid JSON ({type(error).__name__}: {str(error)[:200]}); export the golden "
                         "files again") from None
    cases = manifest.get("cases") if isinstance(manifest, dict) else None
    if not isinstance(cases, dict) or not all(
            isinstance(e, dict) and {"file", "sha256", "config"} <= set(e) for e in cases.values()):
        raise InputError(f"{path} is not a golden manifest: it needs a 'cases' object whose entries hold "
                         "'file', 'sha256' and 'config'; export the golden files again")
    for name, entry in cases.items():
        for key, kind in (("file", str), ("sha256", str), ("config", dict)):
            if not isinstance(entry[key], kind):
                raise InputError(f"{path}: cases.{name}.{key} must be a {'string' if kind is str else 'JSON object'}, "
                                 f"got {entry[key]!r}; export the golden files again")
        if os.path.basename(entry["file"]) != entry["file"] or not entry["file"].endswith(".npz"):
            raise InputError(f"{path}: cases.{name}.file must name a .npz file in {directory}, got {entry['file']!r}")
    if not cases:
        raise InputError(f"{path} holds no cases, so there is nothing to verify; export the golden files again")
    return manifest


def manifest_problems(manifest):
    """What differs between a manifest's own fields and this dlnref's: format, conventions, steps, array shapes."""
    problems = []
    for key, ours in (("format", FORMAT), ("conventions", CONVENTIONS), ("recorded_steps", list(STEPS))):
        if manifest.get(key) != ours:
            problems.append(f"manifest.json: {key} is {manifest.get(key)!r}, this dlnref writes {ours!r}")
    return problems


def verify(directory):
    """Check the hashes, the stored configs, and recompute every array.

    Returns
    -------
    list of str
        One line per problem found, empty when all is well.

    Raises
    ------
    InputError
        When ``manifest.json`` is missing or broken (see :func:`read_manifest`).
    """
    manifest = read_manifest(directory)
    problems = manifest_problems(manifest)
    for name, entry in manifest["cases"].items():
        path = os.path.join(directory, entry["file"])
        if not os.path.exists(path):
            problems.append(f"{entry['file']}: missing")
            continue
        digest = sha256(path)
        if digest != entry["sha256"]:
            problems.append(f"{entry['file']}: SHA-256 {digest[:16]}... does not match the manifest's "
                            f"{entry['sha256'][:16]}...: the file is corrupted or was edited")
            continue
        if entry["config"] != CASES.get(name):   # recomputing another config could take any time and memory
            problems.append(f"{entry['file']}: the manifest's config of {name!r} differs from this dlnref's case "
                            f"{CASES.get(name)!r}: the manifest was edited, or comes from another dlnref version")
            continue
        try:
            expected = compute_case(entry["config"])
        except (KeyError, TypeError, ValueError, DivergenceError) as error:
            problems.append(f"{entry['file']}: the manifest's config cannot be recomputed ({error!r})")
            continue
        shapes = {k: list(v.shape) for k, v in expected.items()}
        if entry.get("arrays") != shapes:
            problems.append(f"{entry['file']}: the manifest's arrays {entry.get('arrays')!r} differ from the "
                            f"recomputed ones {shapes!r}")
        try:
            stored = np.load(path)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:   # truncated, or not an npz at all
            problems.append(f"{entry['file']}: not a readable .npz file ({type(error).__name__}: {error})")
            continue
        if not isinstance(stored, np.lib.npyio.NpzFile):   # a .npy under an .npz name
            problems.append(f"{entry['file']}: not an .npz archive (it holds one {type(stored).__name__})")
            continue
        with stored:
            problems += [f"{entry['file']}: {p}" for p in _stored_problems(stored, entry["config"], expected)]
    return problems


def _stored_problems(stored, config, expected):
    """What differs between one stored file and a fresh computation of its config."""
    problems = []
    meta = {"config": config, "conventions": CONVENTIONS}
    if "config_json" not in stored:
        problems.append("config_json is missing")
    else:
        try:
            if read_config(stored["config_json"]) != json.loads(json.dumps(meta)):
                problems.append("config_json differs from the manifest's config and dlnref's conventions")
        except (ValueError, TypeError):
            problems.append("config_json is not UTF-8 JSON")
    for key, value in expected.items():
        if key not in stored:
            problems.append(f"array {key} is missing")
            continue
        got = stored[key]
        if got.shape != value.shape or got.dtype != value.dtype:
            problems.append(f"array {key} has shape {got.shape} and dtype {got.dtype}, expected {value.shape} "
                            f"and {value.dtype}")
        elif value.dtype == bool:
            if not np.array_equal(got, value):
                problems.append(f"array {key} differs from a fresh computation ({int(np.sum(got != value))} of "
                                f"{value.size} entries flipped)")
        else:
            difference = float(np.abs(got - value).max(initial=0.0))
            scale = max(float(np.abs(value).max(initial=0.0)), 1.0)
            if not difference <= VERIFY_RTOL * scale:
                problems.append(f"array {key} differs from a fresh computation (max difference {difference:.3e})")
    return problems

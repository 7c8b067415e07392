"""The runs every check shares: the paper's sizes (``full``) and reduced ones (``quick``).

Each setup is a :class:`dlnref.compare.CompareConfig`. ``quick`` keeps the
paper's depth, init scale and shape of the problem but shrinks d, so that all
checks finish within 3 minutes on 2 cores; its step sizes are scaled up for
the smaller d (the checks are about the shape of the dynamics, not the rate).
``full`` uses the paper's settings (PAPER.md): factorization d=100, r=10,
lr 1; completion d=100, r=5, p=0.3, lr 10, alpha 5; sensing d=200, r=5,
m=4000, lr 20 in the official operator scaling (20/m here).
"""

import dataclasses
import functools

from dlnref import to_numpy
from dlnref.compare import CompareConfig, build, run_compare

PROBLEMS = ("factorization", "completion", "sensing")

SETUPS = {
    "quick": {
        "factorization": CompareConfig(problem="factorization", d=30, rank=3, lr=20.0, outer_lr_scale=1.0,
                                       steps=20000, record_every=5),
        "completion": CompareConfig(problem="completion", d=30, rank=2, fraction=0.5, lr=3.0, outer_lr_scale=3.0,
                                    steps=20000, record_every=5),
        "sensing": CompareConfig(problem="sensing", d=20, rank=2, measurements=400, lr=10.0 / 400,
                                 outer_lr_scale=1.0, steps=20000, record_every=5),
    },
    "full": {
        "factorization": CompareConfig(problem="factorization", d=100, rank=10, steps=300000, record_every=250),
        "completion": CompareConfig(problem="completion", d=100, rank=5, fraction=0.3, steps=60000, record_every=25),
        "sensing": CompareConfig(problem="sensing", d=200, rank=5, measurements=4000, steps=20000, record_every=10),
    },
}


def setup(size, problem, seed, **changes):
    """The config of ``problem`` at ``size`` ("quick" or "full"), with ``seed`` and any changes."""
    if size not in SETUPS:
        raise ValueError(f"size must be 'quick' or 'full', got {size!r}")
    return dataclasses.replace(SETUPS[size][problem], seed=seed, **changes)


def snapshot(step, weights):
    """``observe`` hook: keep a host copy of every layer at each recorded step."""
    return {"weights": [to_numpy(w) for w in weights]}


@functools.lru_cache(maxsize=None)
def compare_with_snapshots(config):
    """:func:`dlnref.compare.run_compare` with weight snapshots, computed once per config."""
    return run_compare(config, observe=snapshot)


@functools.lru_cache(maxsize=None)
def problem_of(config):
    """The problem that ``config`` trains on (the same one :func:`compare_with_snapshots` uses)."""
    return build(config)[0]

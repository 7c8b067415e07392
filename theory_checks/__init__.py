"""Checks of the paper's claims. Each module exposes ``check(size, seed) -> Verdict``.

Run them with ``dlnref check [--full] [--json] [--claim NAME]``, or call
:func:`run`. ``quick`` (the default) takes about 16 s of CPU time, run on one
core (measured: 14.9 s user + 0.9 s system; 55 s of wall time on 2 cores shared
at a load average of 6); ``full`` uses the paper's sizes (tens of minutes).
"""

import importlib

from dlnref.errors import InputError

from .verdict import Finding, Verdict

CLAIMS = ("invariant_subspace", "incremental_learning", "compressed_faster", "exact_dynamics", "compression_size",
          "low_rank_updates", "exact_compression")


def run(size="quick", seed=0, claims=CLAIMS, progress=None, executor=None):
    """Run the named checks in order and return their verdicts.

    Parameters
    ----------
    size : {"quick", "full"}
    seed : int
    claims : sequence of str
        Names from :data:`CLAIMS`.
    progress : callable or None
        Called with each claim's name before it runs (without ``executor``).
    executor : executor of :func:`dlnref.experiments.executor.open_executor` or None
        Run the claims' independent parts as its tasks (:mod:`theory_checks.parallel`).

    Returns
    -------
    list of Verdict
    """
    unknown = [c for c in claims if c not in CLAIMS]
    if unknown:
        raise InputError(f"claim must be one of {CLAIMS}, got {unknown[0]!r}")
    if executor is not None:
        from .parallel import run_parallel

        return run_parallel(size, seed, claims, executor)
    verdicts = []
    for name in claims:
        if progress is not None:
            progress(name)
        verdicts.append(importlib.import_module(f"{__name__}.{name}").check(size=size, seed=seed))
    return verdicts


__all__ = ["CLAIMS", "Finding", "Verdict", "run"]

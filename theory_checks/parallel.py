"""The checks cut into independent tasks for an executor: ``dlnref check --workers N``.

A check module may expose ``parts(size) -> list of str`` and take
``check(size, seed, part=name)`` to compute that part's findings only (and
``combine(findings)`` if the parts' findings need merging, say over seeds). A part is
named after the run it reads (say ``"sensing"``, the run of
:func:`dlnref.experiments.compare.compare_with_snapshots` that three claims share), so the
parts of every claim that share a name run in one task, in one process, and
the run is computed once. A module without ``parts`` is one task. The verdicts
come back in the claims' order, each part's findings in the order of ``parts``:
the same table as the serial run.
"""

import dataclasses
import functools
import importlib


def claim_module(claim):
    return importlib.import_module(f"{__package__}.{claim}")


def tasks(size, claims):
    """The tasks: lists of ``(claim, part)`` that share a run, those shared by most claims first.

    ``part`` is None for a module without ``parts`` (the whole check).
    """
    groups = {}
    for claim in claims:
        module = claim_module(claim)
        for part in module.parts(size) if hasattr(module, "parts") else [None]:
            groups.setdefault(claim if part is None else part, []).append((claim, part))
    return sorted(groups.values(), key=len, reverse=True)


def run_task(size, seed, members):
    """Run the parts of one task in this process; returns ``[(claim, part, Verdict)]``."""
    results = []
    for claim, part in members:
        module = claim_module(claim)
        verdict = module.check(size=size, seed=seed) if part is None else module.check(size=size, seed=seed, part=part)
        results.append((claim, part, verdict))
    return results


def run_parallel(size, seed, claims, executor):
    """Every claim's verdict, its parts run as tasks of ``executor`` (see :mod:`dlnref.experiments.executor`)."""
    done = {}
    for results in executor.map(functools.partial(run_task, size, seed), tasks(size, claims)):
        for claim, part, verdict in results:
            done[claim, part] = verdict
    return [merge([done[claim, part] for part in _parts(claim, size)], getattr(claim_module(claim), "combine", None))
            for claim in claims]


def _parts(claim, size):
    module = claim_module(claim)
    return module.parts(size) if hasattr(module, "parts") else [None]


def merge(verdicts, combine=None):
    """One verdict from the verdicts of a claim's parts: their findings in order, passed through
    the module's ``combine(findings)`` where it has one (say to keep the worst of several seeds)."""
    findings = [f for v in verdicts for f in v.findings]
    return dataclasses.replace(verdicts[0], findings=findings if combine is None else combine(findings))

"""Which registered problems the oracle checks by default (no hypothesis needed here, so the CLI imports it)."""

from ..problems import problem_class, problem_names


def oracle_kinds():
    """The registered problems whose cases the checks draw by default: those that state their loss's normalisation."""
    return tuple(name for name in problem_names() if problem_class(name).normalisation is not None)


#: ``dlnref conform`` kinds that check the paper's algorithm itself (:mod:`dlnref.oracle.algorithm`).
ALGORITHM_KINDS = ("init", "compression", "cdln", "mlp")

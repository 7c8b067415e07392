"""The oracle kit: check another implementation of deep linear networks against dlnref.

This package is its stable face (``dlnref.testing`` is the same face under
its first name). It imports the core; the core never imports it. Inside,
data flows one way:

- :mod:`~dlnref.oracle.strategies`: hypothesis strategies over networks and problems;
- :mod:`~dlnref.oracle.cases`: the checked cases, their collision rules, and :func:`build_case`;
- :mod:`~dlnref.oracle.reference`: dlnref's numbers, tolerances, safe step sizes;
- :mod:`~dlnref.oracle.conventions`: the loss conventions and depths a user declares, returned tensors;
- :mod:`~dlnref.oracle.signatures`: the known bug signatures, fitted on a case and read on two;
- :mod:`~dlnref.oracle.diagnosis`: the signatures tested on a failing case and confirmed on a second one;
- :mod:`~dlnref.oracle.checks`: ``assert_backward_matches``, ``assert_step_matches``,
  ``assert_trajectory_matches``;
- :mod:`~dlnref.oracle.algorithm`: the paper's algorithm itself, ``assert_init_matches``,
  ``assert_compression_matches``, ``assert_compressed_trajectory_matches``, ``assert_mlp_step_matches``;
- :mod:`~dlnref.oracle.conform` (the ``dlnref conform`` command) and
  :mod:`~dlnref.oracle.golden` (golden files, which need no hypothesis).

Names are imported on first use, so that ``dlnref.oracle.golden`` works
without hypothesis installed.
"""

import importlib

_HOMES = {
    "strategies": ("DynamicsCase", "completion_problems", "factorization_cases", "factorization_problems",
                   "layer_dims", "low_rank_targets", "problems", "seeds", "sensing_problems", "weights"),
    "cases": ("LAYOUTS", "Case", "backward_cases", "build_case", "case_alpha", "normalisation_factors",
              "problem_cases"),
    "conventions": ("LOSSES", "loss_scale"),
    "checks": ("assert_backward_matches", "assert_step_matches", "assert_trajectory_matches", "check_backward",
               "check_step", "check_trajectory", "trajectory_lr_range"),
    "algorithm": ("assert_compressed_trajectory_matches", "assert_compression_matches", "assert_init_matches",
                  "assert_mlp_step_matches", "build_compression_case", "build_mlp_case", "check_compressed_trajectory",
                  "check_compression", "check_init", "check_mlp_step", "compressed_trajectory_lr_range",
                  "compression_cases", "haar_test", "init_cases", "mlp_cases", "spectral_init_differences"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'dlnref.oracle' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


def __dir__():
    return sorted(set(globals()) | set(__all__))

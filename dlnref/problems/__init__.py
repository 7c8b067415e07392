"""Recovery problems: the protocol, the registry, the paper's three problems, and completion from observed entries.

The face of the family (:mod:`dlnref.problems`):

- :class:`Problem`, the protocol a problem follows (:mod:`~dlnref.problems.base`),
  with :class:`Evaluation` and :class:`FactorGradients`, what a training step reads;
- the registry (:mod:`~dlnref.problems.registry`): :func:`make_problem`,
  :func:`register_problem`, :func:`problem_class`, :func:`problem_names`;
- :class:`RecoveryProblem`, the common part of problems with a dense target,
  and the paper's three: :class:`MatrixFactorization`, :class:`MatrixCompletion`,
  :class:`MatrixSensing`;
- :class:`SparseCompletion` and :func:`synthetic_completion`: completion from
  the observed entries alone, at any size.

The fused completion kernel and the thread pool of the observed-entry path are
private modules of the family.
"""

from .base import Evaluation, FactorGradients, Problem, check_problem
from .completion import MatrixCompletion
from .dense import RecoveryProblem
from .factorization import MatrixFactorization
from .registry import ENTRY_POINT_GROUP, make_problem, paper_problems, problem_class, problem_names, register_problem
from .sensing import MatrixSensing
from .sparse import SparseCompletion, synthetic_completion

__all__ = ["ENTRY_POINT_GROUP", "Evaluation", "check_problem", "FactorGradients", "MatrixCompletion", "MatrixFactorization",
           "MatrixSensing", "Problem", "RecoveryProblem", "SparseCompletion", "make_problem", "paper_problems",
           "problem_class", "problem_names", "register_problem", "synthetic_completion"]

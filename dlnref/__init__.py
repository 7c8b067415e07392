"""dlnref: reference implementation of deep linear networks and their compression.

Follows Kwon, Zhang, Song, Balzano, Qu, *Efficient Compression of
Overparameterized Deep Models through Low-Dimensional Learning Dynamics*
(AISTATS 2024, arXiv 2311.05061).

Convention: ``weights = [W_1, ..., W_L]``, ``W_l`` of shape ``(d_l, d_{l-1})``,
end-to-end matrix ``X = W_L @ ... @ W_1``.
"""

from . import dynamics
from .backend import BackendUnavailableError, array_namespace, svd, to_backend, to_numpy
from .compress import compress, parameter_count
from .compress_exact import ExactCompression, compress_exact, train_exact
from .data import gaussian_operators, low_rank_matrix, random_mask
from .dynamics import (
    first_reach_times,
    invariant_subspace_residuals,
    principal_angles,
    saxe_mode,
    singular_values,
    top_singular_subspaces,
)
from .errors import InputError, InputTypeError
from .network import backward, end_to_end, init_weights, layer_dims, prefix_products
from .problems import (
    MatrixCompletion,
    MatrixFactorization,
    MatrixSensing,
    Problem,
    RecoveryProblem,
    SparseCompletion,
    make_problem,
    problem_names,
    register_problem,
    synthetic_completion,
)
from .train import DivergenceError, History, TrainResult, auto_lr, gradient_descent, gradient_step, step_sizes

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError", "DivergenceError", "History", "MatrixCompletion", "MatrixFactorization",
    "MatrixSensing", "RecoveryProblem", "SparseCompletion", "TrainResult", "array_namespace", "auto_lr",
    "backward", "compress",
    "end_to_end", "gaussian_operators", "gradient_descent", "gradient_step", "init_weights", "layer_dims",
    "low_rank_matrix", "make_problem", "parameter_count", "prefix_products", "random_mask",
    "step_sizes", "svd", "synthetic_completion", "to_backend", "to_numpy",
    "dynamics", "first_reach_times", "invariant_subspace_residuals", "principal_angles", "saxe_mode",
    "singular_values", "top_singular_subspaces",
    "ExactCompression", "compress_exact", "train_exact",
    "InputError", "InputTypeError", "Problem", "problem_names", "register_problem",
]

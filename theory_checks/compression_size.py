"""Claim 5: the compressed DLN has 2dw + (L-2)w^2 parameters against L d^2."""

from dlnref import compress, init_weights, make_problem, parameter_count

from .verdict import Finding, Verdict

CLAIM = "The compressed DLN of width w has 2dw + (L-2)w^2 parameters, against L d^2 for the wide DLN."
PAPER = "Parameters: 2 d r_hat + (L-2) r_hat^2, against L d^2; the experiments use r_hat = 2r."

#: (problem, d, r, L) at the paper's sizes: factorization, completion, sensing, the depth study.
CASES = [("factorization", 100, 10, 3), ("completion", 100, 5, 3), ("sensing", 200, 5, 3),
         ("completion", 100, 10, 2), ("completion", 100, 10, 5)]


def check(size="quick", seed=0):
    """Count the parameters of real weight lists and compare with the formulas (exact at any size)."""
    findings = []
    for problem_name, d, rank, depth in CASES:
        problem = make_problem("factorization", (d, d), rank, seed=seed)
        width = 2 * rank
        compressed = parameter_count(compress(problem, depth, width))
        wide = parameter_count(init_weights([d] * (depth + 1), 1e-2, seed=seed))
        formula = 2 * d * width + (depth - 2) * width**2
        findings.append(Finding(
            problem=f"{problem_name} sizes, d={d}, w={width}, L={depth}",
            measured={"compressed": compressed, "wide": wide, "ratio": wide / compressed},
            tolerance=f"counts equal 2dw+(L-2)w^2 = {formula} and L d^2 = {depth * d * d}",
            holds=compressed == formula and wide == depth * d * d, exact=True,
        ))
    return Verdict("compression_size", CLAIM, PAPER, findings)

"""Claim 1 beyond DLNs: in a nonlinear MLP too, every layer's update stays in a low-dimensional subspace."""

import math

from dlnref.experiments.classify import update_rank_run

from .verdict import Finding, Verdict

CLAIM = ("Training an MLP (ReLU layers, a deep linear block) on images by gradient descent, each layer's update "
         "W_l(t) - W_l(0) keeps its energy in a k-dimensional subspace that stays put over the second half of the run.")
PAPER = ("Abstract: 'for many deep models, updates to the weight matrices occur within a low-dimensional invariant "
         "subspace'. No theorem for nonlinear models: an empirical observation.")

#: Share of the update's energy that counts as "in the subspace".
ENERGY = 0.9


def check(size="quick", seed=0):
    """Measure every layer of the wide MLP on the digits (:func:`dlnref.experiments.classify.update_rank_run`).

    Per layer: the share of ``||D(T)||_F^2`` in its top k singular values,
    ``s_{k+1}/s_1``, the share of ``D(T)`` inside the top-k subspaces of
    ``D(T/2)``, and the largest principal angles between the two top-k
    subspaces (reported; the last of k directions holds little energy and
    may turn freely, so the criterion is the captured energy).
    """
    config, layout, reports, accuracy = update_rank_run(size, seed)
    findings = []
    for report in reports:
        holds = report["energy_top_k"] >= ENERGY and report["captured"] >= ENERGY
        findings.append(Finding(
            problem=f"digits MLP h={config.hidden}, {report['label']}",
            measured={"k": report["k"], "energy_top_k": report["energy_top_k"], "ratio_k1": report["ratio_k1"],
                      "captured": report["captured"], "left_angle": report["left_angle"],
                      "right_angle": report["right_angle"], "t1_t2": [report["t1"], report["t2"]],
                      "test_accuracy": accuracy},
            tolerance=f"energy in top k >= {ENERGY:g} at T, and D(T) keeps >= {ENERGY:g} of its energy in the top-k "
                      "subspaces of D(T/2)",
            holds=bool(holds) and not math.isnan(report["captured"]), exact=False,
        ))
    return Verdict("low_rank_updates", CLAIM, PAPER, findings)

"""``figures/README.md``: what each figure shows, in the paper and in our numbers."""

import os

from .._io import atomic_path


def _steps(numbers, net):
    n = numbers[net]
    if n["steps_to_1e-3"] is None:
        return f"{net} did not reach 1e-3"
    return f"{net} {n['steps_to_1e-3']:,} steps / {n['seconds_to_1e-3']:.2f} s"


def _trajectory(paper):
    def ours(n):
        c, w = n["compressed"], n["wide"]
        faster = (c["steps_to_1e-3"] is not None and (w["steps_to_1e-3"] is None or
                                                      c["steps_to_1e-3"] < w["steps_to_1e-3"]))
        verdict = "agrees: the compressed DLN gets there first" if faster else "DIFFERS: the compressed DLN is not faster"
        return (f"to relative error 1e-3: {_steps(n, 'compressed')} against {_steps(n, 'wide')} "
                f"({c['params']:,} vs {w['params']:,} parameters). {verdict}.")
    return paper, ours


def _layer(n):
    agrees = n["equal_spread"] < 1e-8 and n["max_fixed_angle"] < 1e-8
    return (f"the 2r moving singular values end at {n['moving_final']}; the other d-2r stay equal (relative "
            f"spread at most {n['equal_spread']:.1e}) and end at {n['fixed_final']:.4g}; the fixed complement "
            f"turns by at most {n['max_fixed_angle']:.1e} rad. Of the 2r moving values, r grow to the target's "
            f"and r shrink below eps. " + ("Agrees." if agrees else "DIFFERS: the complement is not fixed."))


def _incremental(n):
    parts = [f"{p}: 90% reached at steps {v['steps_to_90pct']} ({'in order' if v['in_order'] else 'NOT in order'})"
             for p, v in n.items() if isinstance(v, dict)]
    agree = all(v["in_order"] for v in n.values() if isinstance(v, dict))
    return "; ".join(parts) + (". Agrees." if agree else ". DIFFERS where not in order.")


def _alpha(n):
    pairs = ", ".join(f"alpha {a:g}: {s if s is not None else 'not reached'}" for a, s in zip(n["alphas"],
                                                                                              n["compressed_steps"]))
    reached = [s for s in n["compressed_steps"] if s is not None]
    falling = all(a >= b for a, b in zip(reached, reached[1:]))
    return (f"steps to 1e-3 for the compressed DLN: {pairs}; wide DLN {n['wide_steps']}. "
            + ("Agrees: a larger alpha is faster." if falling else "DIFFERS: the steps do not fall with alpha."))


def _depth(n):
    runs = n["runs"]

    def test_loss(label):
        run = runs.get(label, {})
        return run.get("final_test_loss")

    def fmt(value):
        return "diverged" if value is None else f"{value:.1e}"

    wide2, comp2, note2 = (test_loss(f"{k}, L=2") for k in ("wide", "compressed", "compressed, notebook init (eps=1)"))
    reached = {k: runs.get(f"{k}, L=3", {}).get("steps_to_loss_1e-10") for k in ("wide", "compressed")}
    l3 = ", ".join(f"{k} {'at step ' + format(v, ',') if v is not None else 'not within the budget'}"
                   for k, v in reached.items())
    l3_faster = reached["compressed"] is not None and (reached["wide"] is None or
                                                       reached["compressed"] < reached["wide"])
    gap = None not in (wide2, note2) and note2 > wide2
    ours_gap = None not in (wide2, comp2) and comp2 > wide2
    return (f"after {n['steps']:,} steps, loss on the unobserved entries at L=2: wide {fmt(wide2)}, compressed "
            f"{fmt(comp2)} (dlnref's init, eps), compressed {fmt(note2)} (the notebook's unscaled depth-2 init). "
            f"Training loss 1e-10 at L=3: {l3}. "
            + ("L=3 agrees: the compressed DLN gets there first. " if l3_faster else
               "L=3 DIFFERS: the compressed DLN is not first. ")
            + ("L=2 agrees with the notebook's init: the compressed DLN ends higher than the wide one"
               if gap else "L=2 DIFFERS even with the notebook's init: the compressed DLN does not end higher")
            + ("; with dlnref's eps init it ends higher too." if ours_gap else
               "; with dlnref's eps init it does not, so the paper's depth-2 gap comes from that unscaled init."))


def _image(n):
    w, c = n["wide"], n["compressed"]
    return (f"{n['shape'][0]}x{n['shape'][1]} pixels, width {n['width']} (2 x the number of singular values of the "
            f"surrogate above twice their median), lr {n['lr']:.3g} (half the stable step), init scale 0.1, "
            f"{n['steps']} steps: relative error on the unobserved pixels wide {w['unobserved_error']:.3f} in "
            f"{w['seconds']:.1f} s, compressed {c['unobserved_error']:.3f} in {c['seconds']:.1f} s. Best along the "
            f"way: wide {w['best_unobserved_error']:.3f} at step {w['best_step']}, compressed "
            f"{c['best_unobserved_error']:.3f} at step {c['best_step']}"
            + ("; after that the networks fit the observed pixels' detail and the unobserved error grows"
               if min(w["best_step"], c["best_step"]) < n["steps"] else "")
            + f". Filling with the observed mean gives {n['mean_fill_error']:.3f}. "
            "The image is only approximately low-rank. No counterpart in the paper, which used MovieLens.")


def _update_rank(n):
    rows = "; ".join(f"{r['label']}: {100 * r['energy_top_k']:.1f}% in the top {r['k']}, {100 * r['captured']:.1f}% "
                     "inside the mid-run top-k subspaces" for r in n["layers"])
    low = all(r["energy_top_k"] >= 0.9 and r["captured"] >= 0.9 for r in n["layers"])
    return (f"{rows} (test accuracy {n['test_accuracy']:.3f}). "
            + ("Agrees: every layer's update, ReLU layers included, is low-dimensional and its subspace stays put."
               if low else "DIFFERS: some layer's update is not within a low-dimensional subspace."))


ENTRIES = {
    "trajectory_factorization": _trajectory(
        "Factorization, d=100, r=10, L=3, lr 1: compressed ~61k steps / ~8 s, wide ~82k steps / ~72 s."),
    "trajectory_completion": _trajectory(
        "Completion, d=100, r=5, 30% observed, lr 10, alpha 5: compressed ~2.3k steps / 0.4 s, wide ~7.9k / 7 s."),
    "trajectory_sensing": _trajectory(
        "Sensing, d=200, r=5, m=4000, lr 20 (std 1/m operators): compressed ~3.4 s, wide ~4.2 s."),
    "layer_spectrum": ("Invariant subspace (Yaras et al.): 2r singular values of each layer move, d-2r stay at eps "
                       "on a fixed subspace.", _layer),
    "incremental_learning": ("The end-to-end singular values rise one after another, largest first.", _incremental),
    "alpha_ablation": ("Completion, p=0.2: steps for alpha 0.5/1/2/5/9.75 = 13.0k/8.3k/5.2k/2.8k/1.8k; "
                       "wide 9.3k.", _alpha),
    "depth": ("The official depth notebook: completion, d=100, r=10, 30% observed, eps 1e-2, lr 50, alpha 2, "
              "500 x 50 steps, training and unobserved-entry losses (1/(2|set|) normalisation) every 50 steps. "
              "At L=2 the unobserved-entry loss plateaus ~3e-2 compressed against ~7e-3 wide; at L=3 both reach "
              "~1e-10 (compressed in 35x50 steps, wide 65x50). Its depth-2 compressed network starts from the "
              "unscaled factors [V^T, U] (eps = 1); at L=3 from eps-scaled ones, as dlnref's C-DLN.", _depth),
    "mlp_update_rank": ("Abstract: updates to the weight matrices of many deep models occur within a "
                        "low-dimensional invariant subspace (no figure for the MLP).", _update_rank),
    "image_grace_hopper": ("(not in the paper)", _image),
    "image_jacksboro_fault_dem": ("(not in the paper)", _image),
}


def write_index(numbers, out):
    """Write ``out/README.md`` from the numbers of every figure made so far (:func:`index_text`)."""
    text = index_text(numbers)
    with atomic_path(os.path.join(out, "README.md")) as tmp, open(tmp, "w") as f:
        f.write(text)


def index_text(numbers):
    """The text of the index ``README.md`` from the numbers of every figure made so far."""
    lines = [
        "# Figures",
        "",
        "Made by `dlnref figures` (the paper's sizes, into `figures/`) or `dlnref figures --quick` (reduced sizes,",
        "seconds, into `figures-quick/`); one figure alone with `dlnref figures --only NAME`. This page is rewritten",
        "from `numbers.json` each time.",
        "",
    ]
    for name, (paper, ours) in ENTRIES.items():
        if name not in numbers:
            continue
        n = numbers[name]
        lines += [
            f"## {name}",
            "",
            f"![{name}]({name}.png)",
            "",
            f"- command: `dlnref figures --only {name}{' --quick' if n['size'] == 'quick' else ''}` "
            f"({n['size']} size, {n['made_in_seconds']:.0f} s)",
            f"- paper: {paper}",
            f"- ours: {ours(n)}",
            "",
        ]
    return "\n".join(lines)

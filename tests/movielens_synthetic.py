"""A MovieLens-100K-like ratings file for tests (the real one is not shipped; nothing is downloaded).

Same shape and format as ``u.data``: 943 users, 1682 items, 100,000 tab-separated
``user item rating timestamp`` lines, every user with at least 20 ratings, item
popularity and user activity skewed (Zipf-like, as in the real set), ratings
1..5 from a rank-``rank`` taste model plus user and item biases and noise,
rounded and clipped, with a mean near the real set's 3.53.
"""

import numpy as np


def write_movielens_like(path, users=943, items=1682, ratings=100_000, rank=5, seed=0):
    rng = np.random.default_rng(seed)
    activity = 1 / np.arange(1, users + 1) ** 0.6
    popularity = 1 / np.arange(1, items + 1) ** 0.9
    per_user = 20 + rng.multinomial(ratings - 20 * users, activity / activity.sum())
    per_user = np.minimum(per_user, items)
    lines, stamp = [], 874724710
    taste_u, taste_i = rng.standard_normal((users, rank)) / 2, rng.standard_normal((items, rank)) / 2
    bias_u, bias_i = rng.normal(0, 0.4, users), rng.normal(0, 0.5, items) - 0.5 * (np.arange(items) > items / 3)
    for u in rng.permutation(users):
        chosen = rng.choice(items, size=per_user[u], replace=False, p=popularity / popularity.sum())
        score = 3.6 + bias_u[u] + bias_i[chosen] + taste_i[chosen] @ taste_u[u] + rng.normal(0, 0.8, len(chosen))
        for item, rating in zip(chosen, np.clip(np.rint(score), 1, 5).astype(int)):
            stamp += int(rng.integers(1, 400))
            lines.append(f"{u + 1}\t{item + 1}\t{rating}\t{stamp}\n")
    path.write_text("".join(lines))
    return path

"""Bootstrap-by-prompt intervals (simulations.stats): coverage of a known mean in a simulation with
clustered data, against the naive position-level bootstrap that ignores the clusters."""

from __future__ import annotations

import numpy as np
import pytest

from spectheory import SpecTheoryValueError
from spectheory.simulations.stats import (cluster_bootstrap, cluster_bootstrap_columns, decimals_for,
                                          format_interval)


def _clustered(rng, G):
    """G prompts of random lengths; prompt means ~ N(0.5, 0.1²) independent of the lengths, so the
    position-weighted mean has expectation 0.5 exactly."""
    sizes = rng.integers(5, 41, size=G)
    mu = rng.normal(0.5, 0.1, size=G)
    groups = np.repeat(np.arange(G), sizes)
    x = mu[groups] + rng.normal(0.0, 0.2, size=groups.size)
    return x, groups


def test_interval_covers_known_mean_at_stated_rate():
    rng = np.random.default_rng(12345)
    R, level = 300, 0.95
    hits = naive = 0
    for r in range(R):
        x, g = _clustered(rng, 60)
        ci = cluster_bootstrap(x, g, n_boot=400, level=level, seed=r)
        hits += ci.low <= 0.5 <= ci.high
        cn = cluster_bootstrap(x, np.arange(x.size), n_boot=100, level=level, seed=r)
        naive += cn.low <= 0.5 <= cn.high
    mc = np.sqrt(level * (1 - level) / R)
    # the cluster bootstrap covers at the stated rate within 3.5 Monte Carlo standard errors (small
    # undercoverage of the percentile method at G = 60 included) ...
    assert abs(hits / R - level) < 3.5 * mc + 0.01, hits / R
    # ... while resampling positions as if independent does not (the check can fail)
    assert naive / R < 0.6, naive / R


def test_columns_share_replicates_and_paired_difference_is_narrower():
    rng = np.random.default_rng(1)
    x, g = _clustered(rng, 30)
    y = x + 0.05 + rng.normal(0, 0.01, size=x.size)  # strongly paired with x
    iv = cluster_bootstrap_columns({"x": x, "y": y, "d": y - x}, g, n_boot=400, seed=3)
    assert iv["d"].half_width < 0.2 * iv["x"].half_width
    assert iv["x"].mean == pytest.approx(x.mean()) and iv["d"].low <= 0.05 <= iv["d"].high
    again = cluster_bootstrap_columns({"x": x}, g, n_boot=400, seed=3)
    # seeded: the same replicates give the same interval (to BLAS rounding)
    assert (again["x"].low, again["x"].high) == pytest.approx((iv["x"].low, iv["x"].high), rel=1e-12)
    assert iv["x"].clusters == 30


def test_refuses_a_single_prompt_and_bad_arguments():
    with pytest.raises(SpecTheoryValueError, match="at least 2 prompts"):
        cluster_bootstrap([0.1, 0.2, 0.3], [0, 0, 0])
    with pytest.raises(SpecTheoryValueError, match="groups"):
        cluster_bootstrap([0.1, 0.2], [0])
    with pytest.raises(SpecTheoryValueError, match="level"):
        cluster_bootstrap([0.1, 0.2], [0, 1], level=1.5)
    with pytest.raises(SpecTheoryValueError, match="NaN"):
        cluster_bootstrap([0.1, np.nan], [0, 1])


@pytest.mark.parametrize("hw,d", [(0.028, 3), (0.04, 2), (0.3, 1), (2e-5, 6), (1.5e-3, 4), (7.0, 0)])
def test_decimals_follow_the_half_width(hw, d):
    assert decimals_for(hw) == d


def test_format_interval():
    assert format_interval(0.53751, 0.5102, 0.5671) == "0.538 [0.510, 0.567]"
    assert format_interval(0.84, 0.80, 0.88) == "0.84 [0.80, 0.88]"
    assert format_interval(-1e-17, -1e-17, -1e-17) == "0.0000 (no spread)"

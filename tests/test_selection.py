"""selection.py: a candidate replaces the fixed baseline only beyond the fold-to-fold noise."""

from __future__ import annotations

import numpy as np

from leadscore.estimators import BASELINE
from leadscore.selection import select_model


def test_select_model_needs_more_than_fold_noise() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.1).astype(int)
    folds = [(np.setdiff1d(np.arange(5000), va), va) for va in np.array_split(rng.permutation(5000), 5)]
    z = 2.0 * y + rng.normal(0, 1, y.size) - 2.5
    baseline = 1 / (1 + np.exp(-z))
    jitter = np.clip(baseline * np.exp(rng.normal(0, 0.02, y.size)), 1e-6, 1 - 1e-6)
    better = 1 / (1 + np.exp(-(z + 1.5 * y - 0.3)))
    sel = select_model(y, folds, baseline, {"same_but_noisy": jitter})
    assert sel["chosen"] == BASELINE and "no candidate" in sel["reason"]
    sel = select_model(y, folds, baseline, {"same_but_noisy": jitter, "better": better})
    assert sel["chosen"] == "better" and sel["gain"] > sel["noise"] > 0

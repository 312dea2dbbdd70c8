"""benchmarks/shift_accuracy.py: the paired comparison of a baseline with the diffusion classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _scripts import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "shift_accuracy.py"


def test_paired_counts_discordant_images_and_exact_mcnemar_p() -> None:
    paired = load_script(SCRIPT).paired
    ok_d = np.array([1, 1, 1, 1, 0, 0, 1, 0], bool)
    ok_b = np.array([1, 0, 0, 0, 1, 0, 1, 0], bool)
    out = paired(ok_d, ok_b)
    assert (out["diffusion_only"], out["baseline_only"]) == (3, 1)
    # two-sided exact binomial test of 3 vs 1 against 1/2: P(X <= 1) + P(X >= 3) for n = 4
    assert out["p_mcnemar_exact"] == pytest.approx((1 + 4 + 4 + 1) / 16)
    assert paired(ok_d, ok_d)["p_mcnemar_exact"] == 1.0  # no discordant image


def test_shift_components_split_the_strong_preset_without_overlap() -> None:
    """benchmarks/shift_components.py: each group changes only its own fields of the strong
    preset, the groups together cover every field it changes, and "strong (all)" is the preset."""
    import dataclasses

    from cytoviz.data.domains import DOMAINS

    mod = load_script(SCRIPT.with_name("shift_components.py"))
    conds = mod.conditions()
    ref, strong = DOMAINS["reference"], DOMAINS["strong"]
    assert conds["reference"] == ref and conds["strong (all)"] == strong
    changed = {f.name for f in dataclasses.fields(strong)
               if f.name != "name" and getattr(strong, f.name) != getattr(ref, f.name)}
    covered: set[str] = set()
    for group, fields in mod.GROUPS.items():
        dom = conds[group]
        for f in dataclasses.fields(dom):
            if f.name == "name":
                continue
            want = getattr(strong if f.name in fields else ref, f.name)
            assert getattr(dom, f.name) == want, (group, f.name)
        assert not covered & set(fields)
        covered |= set(fields)
    assert changed <= covered

import numpy as np
import pytest

from duet.errors import InputError
from duet.eval.compare import paired_change


def test_the_change_is_the_mean_over_prompts_and_its_error_is_over_prompts():
    before = np.array([[0.1, 0.3], [0.5, 0.5], [0.2, 0.0]])
    after = before + np.array([[0.1], [0.3], [0.2]])  # each prompt moves by its own amount
    c = paired_change(before, after)
    assert c.prompts == 3
    assert c.mean == pytest.approx(0.2)
    assert c.stderr == pytest.approx(0.1 / np.sqrt(3))  # std of (0.1, 0.3, 0.2) is 0.1
    assert c.z == pytest.approx(0.2 / (0.1 / np.sqrt(3)))
    assert str(c) == "+0.200 ± 0.058"


def test_samples_of_one_prompt_do_not_count_as_independent_evidence():
    rng = np.random.default_rng(0)
    prompt_effect = rng.normal(0, 1, (8, 1))  # B helps some prompts and hurts others
    before = rng.normal(0, 1, (8, 1)).repeat(50, axis=1)
    after = before + prompt_effect + rng.normal(0, 0.01, (8, 50))
    c = paired_change(before, after)
    per_clip_stderr = (after - before).std(ddof=1) / np.sqrt(before.size)
    assert c.stderr > 5 * per_clip_stderr  # 8 prompts, not 400 clips
    assert abs(c.z) < 3


def test_nan_scores_are_left_out_and_a_prompt_without_scores_is_dropped():
    before = np.array([[0.2, np.nan], [np.nan, np.nan], [0.4, 0.6], [0.0, 0.2]])
    after = np.array([[0.4, 0.9], [0.5, 0.5], [0.6, 0.8], [0.2, 0.4]])
    c = paired_change(before, after)
    assert c.prompts == 3
    assert c.mean == pytest.approx((0.45 + 0.2 + 0.2) / 3)


def test_mismatched_scores_name_the_fix():
    with pytest.raises(InputError, match="same prompts and seeds"):
        paired_change(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(InputError, match="at least 2"):
        paired_change(np.zeros((1, 2)), np.ones((1, 2)))

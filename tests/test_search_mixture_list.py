"""``data build --mixtures KIND,KIND``: a list of kinds draws only those kinds."""

import numpy as np
import pytest

from restoregraph.lab.search.mixtures import check_mixtures, parse_mixture_list, sample_mixture

TASKS = {"deblur", "dehaze", "dejpeg", "denoise"}


def test_list_draws_only_the_named_kinds() -> None:
    rng = np.random.default_rng(0)
    seen = {
        tuple(sorted(t for t, _ in sample_mixture(rng, TASKS, "defocus+haze,defocus+jpeg")))
        for _ in range(60)
    }
    assert seen == {("defocus", "haze"), ("defocus", "jpeg")}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("defocus+fog", "unknown degradation type"),
        ("defocus+motion_blur", "one per"),
        ("rain+haze", "no tool for rain"),
    ],
)
def test_bad_lists_are_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_mixtures(spec, TASKS)


def test_parse_keeps_order_and_drops_repeats() -> None:
    assert parse_mixture_list("noise+jpeg, noise+jpeg,haze") == [("noise", "jpeg"), ("haze",)]

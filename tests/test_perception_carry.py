"""A low-resolution reading that appears only after a restoration step is not acted on."""

from __future__ import annotations

from restoregraph.nodes.common import NOT_INTRODUCED_BY_STEPS, carried_levels


def test_low_resolution_is_kept_only_when_the_image_had_it() -> None:
    after = {"low_resolution": 2, "noise": 1}
    assert "low_resolution" in NOT_INTRODUCED_BY_STEPS
    # the input's own reading: everything kept
    assert carried_levels(after, None) == after
    # read after a step, absent before: the step's smoothing misread, dropped
    assert carried_levels(after, {"noise": 3, "low_light": 2}) == {"noise": 1}
    # present before the step too: the image is low resolution, kept (at the new level)
    assert carried_levels(after, {"low_resolution": 3}) == after
    # the other types come and go as perceived
    assert carried_levels({"haze": 1}, {"noise": 2}) == {"haze": 1}

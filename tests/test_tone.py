"""The tone-protected tools' roll-off (restoregraph.tools.tone) on real pixels."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from restoregraph.metrics.safety import clipped_fraction
from restoregraph.tools.tone import SHOULDER, TOE, protect_tones, shoulder_for, toe_for


def _photo() -> np.ndarray:
    return skimage.data.astronaut()[::4, ::4].astype(np.float32) / 255.0


def test_in_range_output_is_unchanged() -> None:
    img = np.clip(_photo(), TOE + 0.01, SHOULDER - 0.01)
    assert np.array_equal(protect_tones(img), img)


def test_overshoot_rolls_off_keeping_hue_and_order() -> None:
    img = _photo()
    raw = img * 2.5  # a brightening network overshooting far past 1
    plain = np.clip(raw, 0, 1)
    out = protect_tones(raw, img)
    assert clipped_fraction(plain) > 0.2
    assert clipped_fraction(out) < 0.01
    assert out.min() >= 0 and out.max() <= 1
    # hue kept where the plain clamp flattened a channel: channel ratios of the raw pixel
    bright = raw.max(-1) > 1.2
    ratio_raw = raw[bright][:, 0] / raw[bright].max(-1)
    ratio_out = out[bright][:, 0] / out[bright].max(-1)
    assert np.allclose(ratio_raw, ratio_out, atol=1e-3)
    # brightness order kept (the largest channel is a monotone function of the raw one)
    m_raw, m_out = raw.max(-1).ravel(), out.max(-1).ravel()
    order = np.argsort(m_raw, kind="stable")
    assert np.all(np.diff(m_out[order]) >= -1e-6)
    assert shoulder_for(raw.max(-1)) < SHOULDER  # the shoulder moved down for this overshoot


def test_crushed_shadows_lift_without_coloured_specks() -> None:
    img = _photo()
    raw = img - 0.06  # a dehazer pushing shadows below zero
    raw[..., 1] -= 0.05  # with a channel further down than the others
    out = protect_tones(raw, img)
    crushed = (out <= 0.5 / 255).all(-1)
    assert crushed.mean() < (np.clip(raw, 0, 1) <= 0.5 / 255).all(-1).mean()
    assert toe_for(raw.max(-1)) > TOE
    dark = raw.max(-1) < 0.02
    # no speck: a near-black pixel stays near-black in every channel
    assert out[dark].max() < 0.1


@pytest.mark.parametrize("tool_id", ["lowlight.nafnet", "dehaze.nafnet"])
def test_tone_tools_never_clip_what_the_input_had_not(tool_id: str) -> None:
    from restoregraph.tools import default_registry

    img = _photo()
    bright = np.clip(img * 1.6 + 0.1, 0, 1)  # a bright, well-exposed photo: nothing to brighten
    out = default_registry().get(tool_id).run(bright)
    assert clipped_fraction(out) - clipped_fraction(bright) <= 0.01

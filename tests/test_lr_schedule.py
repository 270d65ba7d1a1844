import math

import pytest

from restoregraph.lab.training.lr_schedule import warmup_cosine


def test_warmup_then_cosine_to_the_floor():
    lrs = [warmup_cosine(s, 100, 1e-3, 10, floor=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)  # warm-up
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))  # then only down
    assert lrs[-1] > 1e-4 and math.isclose(warmup_cosine(100, 100, 1e-3, 10, 0.1), 1e-4)
    assert warmup_cosine(500, 100, 1e-3, 10, 0.1) == pytest.approx(1e-4)  # past the end: floor

"""Fuzz the entry points that read untrusted data (hypothesis; a few hundred examples, so it
runs briefly in CI):

* image decoding (``restoregraph.imageio.load_image``) on random bytes and on valid files of
  every format with bytes flipped, inserted, or cut: only ``InputError`` or a valid image;
* plan parsing (``parse_plan``, ``validate_steps`` and the openai planner's ``parse_reply``) on
  random and plan-like text, JSON and objects: only ``PlanError`` or valid toolbox steps, and
  fast (a deadline catches catastrophic regex backtracking).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from restoregraph.core.errors import InputError, PlanError
from restoregraph.imageio import MIN_SIDE, load_image
from restoregraph.planners.base import MAX_PLAN_STEPS, parse_plan, validate_steps
from restoregraph.tools import builtin_registry
from tests.badinput import bomb_png, sample_rgb
from tests.reliability_counts import count, reliability_counts  # noqa: F401

MAX_PIXELS = 2_000_000  # fuzzed headers may claim any size: keep accepted decodes small
FUZZ = settings(
    max_examples=int(os.environ.get("RESTOREGRAPH_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same examples on every CI run (set the env var for more)
)
TOOLBOX = builtin_registry()


def _encode(fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img = sample_rgb(24)
    if fmt == "GIF":
        img = img.convert("P")
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


SEEDS = {
    "png": _encode("PNG"),
    "jpeg": _encode("JPEG", quality=80),
    "webp": _encode("WEBP", lossless=True),
    "tiff": _encode("TIFF", compression="tiff_deflate"),
    "bmp": _encode("BMP"),
    "gif": _encode("GIF"),
    "bomb": bomb_png(20000, 20000),
}


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rg-fuzz-") as d:
        yield Path(d)


def check_decode(data: bytes, scratch: Path) -> None:
    path = scratch / "fuzz.img"
    path.write_bytes(data)
    count("fuzz_decode_examples")
    try:
        image = load_image(path, max_pixels=MAX_PIXELS)
    except InputError as exc:
        assert str(exc)
        return
    assert isinstance(image, np.ndarray) and image.dtype == np.float32
    assert image.ndim == 3 and image.shape[2] == 3
    assert min(image.shape[:2]) >= MIN_SIDE and image.shape[0] * image.shape[1] <= MAX_PIXELS
    assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
    assert path.read_bytes() == data  # never modified


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "cut", "int"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 16))]
        elif op == "cut":
            del data[i:]
        else:  # a header-sized field set to an extreme value
            data[i : i + 4] = draw(
                st.sampled_from(
                    [
                        b"\xff\xff\xff\xff",
                        b"\x00\x00\x00\x00",
                        b"\x7f\xff\xff\xff",
                        b"\x00\x01\x00\x00",
                    ]
                )
            )
    return bytes(data)


@FUZZ
@given(data=st.binary(max_size=4096))
@example(data=b"")
@example(data=b"\x89PNG\r\n\x1a\n")
@example(data=b"GIF89a\xff\xff\xff\xff")
def test_decode_random_bytes(data: bytes, scratch: Path) -> None:
    check_decode(data, scratch)


@FUZZ
@given(data=mutated())
def test_decode_mutated_images(data: bytes, scratch: Path) -> None:
    check_decode(data, scratch)


# -- plan parsing ------------------------------------------------------------------------------
TASK_WORDS = sorted({s.task for s in TOOLBOX} | {"rm", "sudo", "os", "import", "system"})
MODEL_WORDS = sorted({s.model for s in TOOLBOX} | {"nafnet", "x;", "../../etc/passwd", "$(id)"})
TOKENS = st.one_of(
    st.sampled_from(TASK_WORDS),
    st.sampled_from(MODEL_WORDS),
    st.integers(-3, 20_000).map(str),
    st.sampled_from(
        [
            ".",
            ")",
            " ",
            "\n",
            "Stop",
            "stop.",
            "1.",
            "2)",
            "IGNORE PREVIOUS",
            "`rm -rf ~`",
            "{",
            "}",
            '"steps"',
            "```json",
            "\x00",
            "٣.",
            "1️⃣",
        ]
    ),
    st.text(max_size=12),
)


def check_steps(steps: list[dict[str, str]] | list[object]) -> None:
    assert len(steps) <= MAX_PLAN_STEPS
    for s in steps:
        assert isinstance(s, dict)
        assert s["tool"] in TOOLBOX and TOOLBOX.get(s["tool"]).task == s["task"]


@FUZZ
@given(text=st.one_of(st.text(max_size=400), st.lists(TOKENS, max_size=80).map(" ".join)))
@example(text="9" * 19_999 + ".")
@example(text="1. " * 6_000)
@example(text=" ".join(f"{i}. denoise nlmeans." for i in range(1, 2_000)))
@example(text="Stop")
def test_parse_plan(text: str) -> None:
    count("fuzz_plan_examples")
    t0 = time.perf_counter()
    try:
        plan = parse_plan(text, TOOLBOX)
    except PlanError:
        plan = None
    assert time.perf_counter() - t0 < 2.0, "parse_plan is too slow on this text (backtracking?)"
    if plan is not None:
        check_steps(list(plan.steps))


JSONISH = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=20),
        st.sampled_from(TOOLBOX.ids()),
        st.sampled_from(TASK_WORDS),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(
            st.sampled_from(["task", "tool", "steps", "x"]) | st.text(max_size=5), inner, max_size=4
        ),
    ),
    max_leaves=30,
)


@FUZZ
@given(steps=st.lists(JSONISH, max_size=20))
def test_validate_steps(steps: list[object]) -> None:
    count("fuzz_plan_examples")
    try:
        out = validate_steps(steps, TOOLBOX)  # type: ignore[arg-type]
    except PlanError:
        return
    check_steps(list(out))


@FUZZ
@given(content=st.one_of(JSONISH.map(json.dumps), st.text(max_size=300), JSONISH))
@example(content=json.dumps({"steps": [{"task": "denoise", "tool": "denoise.nlmeans"}] * 10_000}))
@example(content="[" * 5_000 + "]" * 5_000)
def test_openai_parse_reply(content: object) -> None:
    from restoregraph.planners.openai import parse_reply

    count("fuzz_plan_examples")
    try:
        steps = parse_reply(content, TOOLBOX)
    except PlanError:
        return
    check_steps(list(steps))

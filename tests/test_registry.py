"""The tool registry: id rules, duplicates, lookups, the built-in tools, entry-point plugins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import restoregraph.tools.registry as registry_module
from restoregraph.core.errors import ToolError
from restoregraph.core.tasks import TASKS
from restoregraph.tools import ToolRegistry, ToolSpec, builtin_registry
from restoregraph.tools.classical import OPTIONAL_TOOL_IDS, classical_specs

# The classical tool ids are a public API (planners are trained on them): renaming one must
# break this test. Written out here on purpose, not imported from the package.
SHIPPED_CLASSICAL_IDS = [
    "denoise.nlmeans",
    "denoise.bilateral",
    "denoise.tv",
    "denoise.oidn",
    "deblur.wiener",
    "deblur.unsharp",
    "dejpeg.deblock",
    "dehaze.dcp",
    "lowlight.clahe",
    "lowlight.gamma",
    "lowlight.zerodce",
    "sr.bicubic.x2",
    "sr.lanczos.x2",
    "sr.bicubic.x4",
    "derain.median",
]


def identity(image: np.ndarray) -> np.ndarray:
    return image


def spec(tool_id: str, task: str | None = None, **kwargs: Any) -> ToolSpec:
    return ToolSpec(
        id=tool_id,
        task=task or tool_id.split(".")[0],
        description="test tool",
        run=kwargs.pop("run", identity),
        **kwargs,
    )


# ------------------------------------------------------------------------------- ToolSpec


@pytest.mark.parametrize(
    "tool_id",
    ["denoise.nlmeans", "denoise.nafnet.high", "sr.bicubic.x2", "dejpeg.fbcnn_gray"],
)
def test_valid_ids(tool_id: str) -> None:
    assert spec(tool_id).id == tool_id


@pytest.mark.parametrize(
    "tool_id",
    [
        "denoise",
        "denoise.",
        ".nlmeans",
        "Denoise.nlmeans",
        "denoise.NLMeans",
        "denoise.nl-means",
        "denoise.nl means",
        "denoise.a.b.c",
        "denoise..x",
        "",
    ],
)
def test_bad_ids_are_rejected(tool_id: str) -> None:
    with pytest.raises(ToolError, match="invalid tool id"):
        spec(tool_id, task="denoise")


def test_unknown_task_is_rejected() -> None:
    with pytest.raises(ToolError, match="unknown task"):
        spec("colorize.deoldify")


def test_id_must_start_with_its_task() -> None:
    with pytest.raises(ToolError, match="must start with its task"):
        spec("deblur.wiener", task="denoise")


def test_run_must_be_callable() -> None:
    with pytest.raises(ToolError, match="not callable"):
        spec("denoise.x", run="not a function")


def test_model_is_the_part_after_the_task() -> None:
    assert spec("denoise.nafnet.high").model == "nafnet.high"
    assert spec("sr.bicubic.x4", scale=4).model == "bicubic.x4"


# --------------------------------------------------------------------------- ToolRegistry


def test_duplicate_ids_are_rejected() -> None:
    reg = ToolRegistry([spec("denoise.a")])
    with pytest.raises(ToolError, match="duplicate tool id 'denoise.a'"):
        reg.register(spec("denoise.a"))
    with pytest.raises(ToolError, match="duplicate"):
        ToolRegistry([spec("deblur.x"), spec("deblur.x")])
    assert len(reg) == 1


def test_lookups_for_task_tasks_and_subset() -> None:
    reg = ToolRegistry(
        [spec("denoise.a"), spec("deblur.b"), spec("denoise.c"), spec("sr.d.x2", scale=2)]
    )
    assert reg.ids() == ["denoise.a", "deblur.b", "denoise.c", "sr.d.x2"]  # registration order
    assert [s.id for s in reg.for_task("denoise")] == ["denoise.a", "denoise.c"]
    assert reg.for_task("dehaze") == []
    assert reg.tasks() == ["deblur", "denoise", "sr"]
    assert "deblur.b" in reg and "deblur.zzz" not in reg
    assert reg.get("sr.d.x2").scale == 2
    with pytest.raises(ToolError, match="unknown tool id"):
        reg.get("denoise.zzz")
    sub = reg.subset(["denoise.c", "deblur.b"])
    assert sub.ids() == ["denoise.c", "deblur.b"]
    assert len(reg) == 4  # the subset is a new registry
    with pytest.raises(ToolError, match="unknown tool id"):
        reg.subset(["denoise.a", "dehaze.nope"])
    assert [s.id for s in reg] == reg.ids()


# ------------------------------------------------------------------------ built-in tools


def test_builtin_registry_has_enough_tools_and_tasks() -> None:
    reg = builtin_registry()
    assert len(reg) >= 12
    assert len(reg.tasks()) >= 6
    assert set(reg.tasks()) <= set(TASKS)
    ids = reg.ids()
    assert len(ids) == len(set(ids))


def test_classical_ids_are_exactly_the_shipped_ones() -> None:
    shipped = [s.id for s in classical_specs()]
    expected = [i for i in SHIPPED_CLASSICAL_IDS if i in shipped or i not in OPTIONAL_TOOL_IDS]
    assert shipped == expected
    assert set(SHIPPED_CLASSICAL_IDS) - set(shipped) <= OPTIONAL_TOOL_IDS
    required = [s.id for s in classical_specs(include_optional=False)]
    assert required == [i for i in SHIPPED_CLASSICAL_IDS if i not in OPTIONAL_TOOL_IDS]
    reg = builtin_registry()
    assert all(i in reg for i in shipped)


def test_builtin_ids_are_stable_between_builds() -> None:
    assert builtin_registry().ids() == builtin_registry().ids()


def test_classical_specs_are_sensible() -> None:
    for s in classical_specs():
        assert s.kind == "classical" and s.source == "builtin"
        assert s.description
        assert s.severity and set(s.severity) <= {1, 2, 3}
        assert list(s.severity) == sorted(set(s.severity))
        assert 0 < s.cost < 10
        assert s.scale == (int(s.id[-1]) if s.task == "sr" else 1)


# -------------------------------------------------------------------- entry-point plugins


class FakeEntryPoint:
    def __init__(self, name: str, target: Callable[[ToolRegistry], None]) -> None:
        self.name = name
        self.group = registry_module.ENTRY_POINT_GROUP
        self._target = target

    def load(self) -> Callable[[ToolRegistry], None]:
        return self._target


class UnloadableEntryPoint(FakeEntryPoint):
    def load(self) -> Callable[[ToolRegistry], None]:
        raise ModuleNotFoundError("No module named 'missing_plugin'")


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, eps: list[FakeEntryPoint]) -> list[str]:
    groups: list[str] = []

    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        groups.append(group)
        return [ep for ep in eps if ep.group == group]

    monkeypatch.setattr(registry_module, "entry_points", entry_points)
    return groups


def test_entry_point_plugin_registers_a_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    def register(reg: ToolRegistry) -> None:
        reg.register(spec("denoise.plugin_tool", source="plugin", kind="user"))

    groups = fake_entry_points(monkeypatch, [FakeEntryPoint("good", register)])
    reg = ToolRegistry([spec("denoise.a")])
    assert reg.load_entry_points() == []
    assert groups == ["restoregraph.tools"]
    assert reg.ids() == ["denoise.a", "denoise.plugin_tool"]
    assert reg.get("denoise.plugin_tool").source == "plugin"


def test_broken_plugins_are_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def good(reg: ToolRegistry) -> None:
        reg.register(spec("dehaze.plugin"))

    def raises(reg: ToolRegistry) -> None:
        raise RuntimeError("plugin bug")

    def duplicate(reg: ToolRegistry) -> None:
        reg.register(spec("denoise.a"))

    def bad_id(reg: ToolRegistry) -> None:
        reg.register(spec("Denoise.Bad", task="denoise"))

    fake_entry_points(
        monkeypatch,
        [
            FakeEntryPoint("raises", raises),
            UnloadableEntryPoint("unloadable", good),
            FakeEntryPoint("good", good),
            FakeEntryPoint("duplicate", duplicate),
            FakeEntryPoint("bad_id", bad_id),
        ],
    )
    reg = ToolRegistry([spec("denoise.a")])
    failed = reg.load_entry_points()
    assert failed == ["raises", "unloadable", "duplicate", "bad_id"]
    assert reg.ids() == ["denoise.a", "dehaze.plugin"]

"""End to end on CPU: LoRA-train a tiny random Qwen2-VL on exported-format TRL rows with real
images (scripts/train_mllm_lora.py), save the adapter, reload base + adapter, generate plans.

The model is randomly initialised, so a parseable plan is made meaningful by memorisation: 80
LoRA steps on three rows drive the answer loss near zero, and free (unconstrained) greedy
decoding must then reproduce each row's plan exactly and pass ``parse_plan``; the base model
without the adapter must answer differently. Constrained decoding (plan grammar) is checked
too: it must give a parseable plan from the base model as well.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("peft")
pytest.importorskip("transformers")

from restoregraph.core.errors import InputError  # noqa: E402
from restoregraph.planners.base import parse_plan  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_mllm_lora.py"
ALL_LINEAR = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"


def _script():
    spec = importlib.util.spec_from_file_location("train_mllm_lora", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_tiny_qwen2vl_lora_end_to_end(tmp_path):
    import torch

    from restoregraph.lab.training import mllm
    from restoregraph.tools import builtin_registry

    threads = torch.get_num_threads()
    rows_file = mllm.make_vision_rows(tmp_path / "data", n=3, seed=0)
    rows = mllm.read_vision_rows(rows_file)
    assert len(rows) == 3 and all(Path(r["images"][0]).is_file() for r in rows)
    tiny, adapter = tmp_path / "tiny", tmp_path / "adapter"
    rc = _script().main(
        [
            "--make-tiny",
            str(tiny),
            "--model",
            str(tiny),
            "--data",
            str(rows_file),
            "--out",
            str(adapter),
            "--steps",
            "80",
            "--lr",
            "1e-2",
            "--lora-r",
            "8",
            "--seed",
            "0",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--target-modules",
            ALL_LINEAR,
        ]
    )
    assert rc == 0
    assert torch.get_num_threads() == threads  # training restores the thread setting
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    summary = json.loads((adapter / "training.json").read_text())
    assert summary["steps"] == 80 and summary["loss_last"] < summary["loss_first"] / 4

    toolbox = builtin_registry()
    model, processor = mllm.load_with_adapter(tiny, adapter)
    for row in rows:
        reference = mllm.split_messages(row)[1]
        free = mllm.generate(model, processor, row)
        assert free == reference  # memorised, no constraint needed
        assert parse_plan(free, toolbox).text == reference
        constrained = mllm.generate(model, processor, row, toolbox=toolbox)
        assert parse_plan(constrained, toolbox).text == reference

    base, base_proc = mllm.load_model(tiny)
    before = mllm.generate(base, base_proc, rows[0])
    assert before != mllm.split_messages(rows[0])[1]  # the adapter is what changed the answer
    parse_plan(mllm.generate(base, base_proc, rows[0], toolbox=toolbox), toolbox)


def test_plan_grammar_prefixes():
    from restoregraph.llm.grammar import PlanGrammar
    from restoregraph.tools import builtin_registry

    g = PlanGrammar(builtin_registry(), max_steps=3)
    assert g.is_prefix("") and g.is_prefix("St") and g.is_complete("Stop.")
    assert g.is_prefix("1. denoise oi") and not g.is_complete("1. denoise oi")
    assert g.is_complete("1. denoise oidn. 2. sr bicubic.x4.")
    assert g.is_prefix("1. denoise oidn. 2. sr bicubic.x")
    assert not g.is_prefix("1. denoise oidn. 2. denoise tv.")  # a task twice
    assert not g.is_prefix("2. denoise oidn.")  # numbering starts at 1
    assert not g.is_prefix("1. denoise rm -rf")
    assert not g.is_prefix("1. dejpeg deblock. 2. denoise oidn. 3. sr bicubic.x2. 4. ")
    # required tasks: a plan is whole only once it runs them all, and Stop is no plan
    r = PlanGrammar(builtin_registry(), max_steps=3, required={"denoise", "sr"})
    assert not r.is_prefix("St") and not r.is_complete("Stop.")
    assert not r.is_complete("1. denoise oidn.") and r.is_prefix("1. denoise oidn. 2. sr")
    assert r.is_complete("1. sr bicubic.x4. 2. denoise oidn.")
    assert r.is_complete("1. sr bicubic.x4. 2. dejpeg deblock. 3. denoise oidn.")
    assert "!" not in r.alphabet and set("0123456789. ") <= r.alphabet


def test_read_vision_rows_errors(tmp_path):
    from restoregraph.lab.training import mllm

    with pytest.raises(InputError):
        mllm.read_vision_rows(tmp_path / "missing.jsonl")
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"messages": [], "images": ["nope.png"]}\n')
    with pytest.raises(InputError, match="not found"):
        mllm.read_vision_rows(tmp_path)
    bad.write_text("not json\n")
    with pytest.raises(InputError, match="not a JSON line"):
        mllm.read_vision_rows(bad)

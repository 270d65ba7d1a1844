"""The perception CNN's hand-crafted global image statistics in numpy: the same computation as
:func:`restoregraph.perception.cnn.image_stats` (PyTorch), for the exported network, which
takes them as its second input (``torch.quantile`` has no ONNX operator). Float32 like the
PyTorch version; the two agree to float rounding (the export's output check measures it)."""

from __future__ import annotations

import numpy as np

N_STATS = 21
EPS = 1e-4
QUANTILES = (0.02, 0.25, 0.5, 0.75, 0.98)


def _log(v: np.ndarray) -> np.ndarray:
    return np.log(v + np.float32(EPS))


def _blockiness(profile: np.ndarray) -> np.ndarray:
    """(B, n) mean-|difference| profiles -> (B,) log peak-to-mean ratio modulo 8."""
    n = (profile.shape[1] // 8) * 8
    if n < 16:
        return np.zeros(profile.shape[0], np.float32)
    phases = profile[:, :n].reshape(profile.shape[0], -1, 8).mean(1)
    return _log(phases.max(1)) - _log(phases.mean(1))


def _laplacian(t: np.ndarray, step: int = 1) -> np.ndarray:
    s = step
    c = t[..., s:-s, s:-s]
    return (
        4 * c
        - t[..., : -2 * s, s:-s]
        - t[..., 2 * s :, s:-s]
        - t[..., s:-s, : -2 * s]
        - t[..., s:-s, 2 * s :]
    )


def _quantile(a: np.ndarray, q: float | tuple[float, ...]) -> np.ndarray:
    return np.quantile(a, q, axis=1).astype(np.float32)


def _lower_median(a: np.ndarray) -> np.ndarray:
    """Per row, the lower of the two middle values (``torch.median``'s convention)."""
    k = (a.shape[1] - 1) // 2
    return np.partition(a, k, axis=1)[:, k]


def image_stats(x: np.ndarray) -> np.ndarray:
    """(B, 3, h, w) float32 images in [0, 1] -> (B, N_STATS) float32 (see the PyTorch
    version's docstring for what each statistic is for)."""
    x = np.asarray(x, np.float32)
    bsz = x.shape[0]
    zeros = np.zeros(bsz, np.float32)
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    sub = y[:, :, ::2, ::2].reshape(bsz, -1)
    qs = _quantile(sub, QUANTILES)
    hi, lo = x.max(1), x.min(1)
    h, w = y.shape[2:]
    if h >= 5 and w >= 5:
        l1 = np.abs(_laplacian(y).reshape(bsz, -1))
        d2 = _laplacian(y, 2).reshape(bsz, -1)
        l2 = np.abs(d2)
        lc = np.abs(_laplacian(np.concatenate([r - g, b - g], axis=1)).reshape(bsz, -1))
        bright = _log(np.maximum(d2, 0).mean(1)) - _log(np.maximum(-d2, 0).mean(1))
        tail = _log(np.maximum(_quantile(d2[:, ::3], 0.995), 0)) - _log(l2.mean(1))
        lap1, lap2 = _log(l1.mean(1)), _log(l2.mean(1))
        lap1_med = _log(_lower_median(l1[:, ::2]))
        lap_c = _log(lc.mean(1))
    else:
        lap1 = lap2 = lap1_med = lap_c = bright = tail = zeros
    if h >= 2 and w >= 2:
        gx = np.abs(y[:, 0, :, 1:] - y[:, 0, :, :-1])
        gy = np.abs(y[:, 0, 1:, :] - y[:, 0, :-1, :])
        sx = y[:, 0, :-1, 1:] - y[:, 0, :-1, :-1]
        sy = y[:, 0, 1:, :-1] - y[:, 0, :-1, :-1]
        jxx, jyy = (sx * sx).mean((1, 2)), (sy * sy).mean((1, 2))
        jxy = (sx * sy).mean((1, 2))
        coherence = np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + np.float32(EPS))
        grad_x, grad_y = _log(gx.mean((1, 2))), _log(gy.mean((1, 2)))
        block_x, block_y = _blockiness(gx.mean(1)), _blockiness(gy.mean(2))
    else:
        coherence = grad_x = grad_y = block_x = block_y = zeros
    feats = [
        y.mean((1, 2, 3)),
        y.std((1, 2, 3)) if h * w > 1 else zeros,
        *qs,
        lo.mean((1, 2)),
        ((hi - lo) / (hi + np.float32(EPS))).mean((1, 2)),
        lap1,
        lap1_med,
        lap2,
        lap1 - lap2,
        lap_c,
        bright,
        tail,
        grad_x,
        grad_y,
        coherence,
        block_x,
        block_y,
    ]
    return np.stack(feats, axis=1).astype(np.float32)


__all__ = ["N_STATS", "image_stats"]

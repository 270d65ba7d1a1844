from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restoregraph.cli.main import main
from restoregraph.store.checkpointer import make_checkpointer
from restoregraph.store.images import ImageStore


def test_store_is_content_addressed_and_lossless(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "s")
    rng = np.random.default_rng(0)
    img = rng.random((17, 23, 3)).astype(np.float32)
    ref = store.put(img)
    assert Path(ref["uri"]).name == f"{ref['sha256']}.png" and ref["shape"] == [17, 23, 3]
    mtime = Path(ref["uri"]).stat().st_mtime_ns
    again = store.put(img.copy())
    assert again == ref and Path(ref["uri"]).stat().st_mtime_ns == mtime  # written once
    back = store.get(ref)
    assert np.abs(back - img).max() <= 1 / 65535 + 1e-7
    assert store.put(back) == ref  # a replay reads back exactly the stored pixels


def test_store_put_quantised_and_preview(tmp_path: Path) -> None:
    """A caller that drops its float image stores the same file as ``put``; a preview is the
    checked pixels shrunk by area averaging, never larger than asked."""
    from restoregraph.core.errors import InputError, StoreError
    from restoregraph.store.images import quantise

    rng = np.random.default_rng(0)
    img = rng.random((120, 200, 3), dtype=np.float32)
    store = ImageStore(tmp_path / "s")
    ref = store.put(img)
    again = store.put_quantised(quantise(img.copy()))
    assert again == ref
    with pytest.raises(InputError):
        store.put_quantised(img)  # float pixels are not stored pixels
    small = store.preview(ref, 50)
    assert small.shape == (30, 50, 3) and small.dtype == np.float32
    whole = store.get(ref)
    np.testing.assert_allclose(small.mean(axis=(0, 1)), whole.mean(axis=(0, 1)), atol=2e-3)
    assert store.preview(ref, 500).shape == whole.shape  # never enlarged
    np.testing.assert_array_equal(store.preview(ref, 500), whole)
    Path(ref["uri"]).write_bytes(Path(ref["uri"]).read_bytes()[:100])  # damaged: refused
    with pytest.raises(StoreError):
        store.preview(ref, 50)


def test_store_garbage_collection(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "s")
    a = store.put(np.zeros((8, 8, 3), np.float32))
    b = store.put(np.ones((8, 8, 3), np.float32))
    assert store.collect_garbage({a["sha256"]}) == 1
    assert store.all_hashes() == {a["sha256"]}
    assert not Path(b["uri"]).exists()


def test_checkpointer_kinds(tmp_path: Path) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.sqlite import SqliteSaver

    assert isinstance(make_checkpointer(None), InMemorySaver)
    assert isinstance(make_checkpointer("memory"), InMemorySaver)
    saver = make_checkpointer(tmp_path / "db" / "c.sqlite")
    assert isinstance(saver, SqliteSaver) and (tmp_path / "db" / "c.sqlite").exists()


def test_graph_command_writes_png_and_mermaid(tmp_path: Path) -> None:
    for name in ("g.png", "g.mmd"):
        with pytest.raises(SystemExit) as exc:
            main(["graph", "-o", str(tmp_path / name)])
        assert exc.value.code == 0
    assert Image.open(tmp_path / "g.png").size[0] > 100
    text = (tmp_path / "g.mmd").read_text()
    assert "rescheduling -.-> planning" in text and "execution --> reflection" in text
    with pytest.raises(SystemExit) as exc:
        main(["graph", "-o", str(tmp_path / "g.png")])
    assert exc.value.code == 3  # refuses to overwrite


def test_saved_files_get_normal_permissions(tmp_path: Path) -> None:
    import os

    from restoregraph.imageio import save_image

    out = save_image(np.zeros((8, 8, 3), np.float32), tmp_path / "x.png")
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_exif_orientation_applied(tmp_path: Path) -> None:
    from restoregraph.imageio import load_image

    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    img.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    out = load_image(tmp_path / "r.jpg")
    assert out.shape == (40, 20, 3)  # displayed upright: portrait
    assert out[:20].mean() > 0.9 and out[20:].mean() < 0.1  # white half now on top

"""The web app's logic without a browser (restoregraph.web.session / progress, cmd_serve).

The page itself is tested in headless Chromium by tests/test_web_browser.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner

from restoregraph.core.errors import InputError
from restoregraph.degrade import apply_mixture, parse_mixture
from restoregraph.imageio import load_image, save_image
from restoregraph.runner import Runner
from restoregraph.web.progress import ProgressLog
from restoregraph.web.server import is_loopback
from restoregraph.web.session import Workspace
from tests.conftest import crop

HAS_CHAT = importlib.util.find_spec("restoregraph.chat.session") is not None


@pytest.fixture(scope="module")
def degraded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    img = crop(skimage.data.astronaut(), 128)
    out, _ = apply_mixture(img, parse_mixture("noise:2+jpeg:2"), seed=0)
    return save_image(out, tmp_path_factory.mktemp("web") / "my photo.png")


def workspace(tmp_path: Path, use_chat: bool, limit: int = 1_000_000) -> Workspace:
    return Workspace(
        Runner(tmp_path / "home"), {"max_steps": 3}, max_upload_bytes=limit, use_chat=use_chat
    )


def run_dirs(ws: Workspace) -> list[Path]:
    return sorted((ws.runner.home / "runs").iterdir())


def test_upload_is_stored_in_its_run_directory_under_a_generated_name(
    degraded: Path, tmp_path: Path
) -> None:
    ws = workspace(tmp_path, use_chat=False)
    conv = ws.accept_upload(degraded, original_name="../../../etc/passwd.png")
    assert conv.input_path.parent.parent == ws.runner.home / "runs"
    assert conv.input_path.name == "input.png"
    assert conv.input_path.parent.name == conv.run_id and conv.run_id.startswith("web-")
    assert np.array_equal(load_image(conv.input_path), load_image(degraded))
    assert conv.shape == (128, 128, 3)
    other = ws.accept_upload(degraded, original_name="photo.exe")
    assert other.input_path.name == "input.img"  # unknown extension: a fixed name
    assert other.run_id != conv.run_id
    assert degraded.exists()  # the uploaded file itself is left alone


def test_refused_uploads_leave_nothing_behind(degraded: Path, tmp_path: Path) -> None:
    ws = workspace(tmp_path, use_chat=False, limit=degraded.stat().st_size - 1)
    with pytest.raises(InputError, match=r"too large .*limit is"):
        ws.accept_upload(degraded)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        ws.accept_upload(empty)
    text = tmp_path / "notes.png"
    text.write_text("not a picture\n")
    with pytest.raises(InputError) as info:
        ws.accept_upload(text)
    message = str(info.value)
    assert "not an image" in message and str(ws.runner.home) not in message
    assert "\n" not in message
    with pytest.raises(InputError, match="did not arrive"):
        ws.accept_upload(tmp_path / "missing.png")
    assert run_dirs(ws) == []


def test_messages_and_undo_need_a_photo_and_a_run(degraded: Path, tmp_path: Path) -> None:
    ws = workspace(tmp_path, use_chat=False)
    with pytest.raises(InputError, match="upload a photo first"):
        ws.conversation(None)
    conv = ws.accept_upload(degraded)
    assert ws.conversation(conv.id) is conv
    with pytest.raises(InputError, match="type what you want"):
        ws.send(conv, "   ")
    with pytest.raises(InputError, match="nothing to undo"):
        ws.undo(conv, 0)
    assert ws.view(conv) is None


def test_runner_mode_restores_undoes_and_writes_the_download(
    degraded: Path, tmp_path: Path
) -> None:
    ws = workspace(tmp_path, use_chat=False)
    conv = ws.accept_upload(degraded, original_name="x.png")
    events: list[dict] = []
    reply = ws.send(conv, "remove the grain", on_event=events.append)
    assert reply.run_id == conv.run_id and "Restored with" in reply.text
    assert {e["event"] for e in events} >= {"perception", "plan"}
    view = ws.view(conv)
    assert view is not None and view.finished and view.original is not None
    assert (conv.input_path.parent / "run.json").exists()  # one directory per run
    assert view.result == conv.input_path.parent / "restored.png"
    assert view.current is not None
    assert np.allclose(load_image(view.result), ws.preview(view.current) / 255.0, atol=1e-6)
    assert ws.runner.meta(conv.run_id)["instruction"] == "remove the grain"
    preview = ws.preview(view.original, side=64)
    assert preview.dtype == np.uint8 and max(preview.shape[:2]) == 64
    undone = ws.undo(conv, 0)
    assert "Went back to step 0" in undone.text
    after = ws.view(conv)
    assert after is not None and after.abandoned


@pytest.mark.skipif(not HAS_CHAT, reason="restoregraph.chat is not installed")
def test_chat_mode_undo_returns_to_the_input_exactly(degraded: Path, tmp_path: Path) -> None:
    ws = workspace(tmp_path, use_chat=True)
    conv = ws.accept_upload(degraded)
    reply = ws.send(conv, "please remove the jpeg blocks")
    assert reply.run_id == conv.run_id  # the chat's run lives in the upload's directory
    view = ws.view(conv)
    assert view is not None and view.accepted, reply.text
    assert view.result is not None
    assert not np.array_equal(load_image(view.result), load_image(conv.input_path))
    ws.undo(conv, 0)
    back = ws.view(conv)
    assert back is not None and back.accepted == [] and back.current == back.original
    assert back.result is not None
    assert np.array_equal(load_image(back.result), load_image(conv.input_path))


def test_progress_log_renders_the_plan_as_it_runs() -> None:
    log = ProgressLog("Restoring")
    assert "perception" in log.markdown()
    log({"event": "perception", "present": {"noise": 2}, "quality": 0.5})
    log(
        {
            "event": "plan",
            "plan": "1. denoise nlmeans. 2. dejpeg deblock.",
            "note": "",
            "round": 1,
            "steps": 2,
        }
    )
    log({"event": "step_start", "index": 1, "tool": "denoise.nlmeans", "task": "denoise"})
    assert "(0/2 steps)" in log.markdown() and "denoise.nlmeans" in log.markdown()
    log(
        {
            "event": "reflection",
            "index": 1,
            "tool": "denoise.nlmeans",
            "status": "rolled_back",
            "reason": "worse <b>*x*</b>",
        }
    )
    text = log.markdown()
    assert "(1/2 steps)" in text and "rolled back" in text
    assert "<b>" not in text and "\\<b\\>" in text  # reasons are escaped, not rendered
    log.finish("1.0 s")
    assert log.markdown().startswith("**Restoring: done.** 1.0 s")


def test_serve_command_options_and_refusals() -> None:
    from restoregraph.cli.main import app, main

    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--home", "--max-upload-mb", "--planner"):
        assert option in result.output
    assert "127.0.0.1" in result.output
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--planner", "nope"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--max-upload-mb", "0"])
    assert exc.value.code == 2
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")

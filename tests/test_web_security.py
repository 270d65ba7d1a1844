"""The web app's security over HTTP, against a real ``restoregraph serve`` (issue #23, 8-10).

Each test talks to a server started on a free localhost port, with httpx and gradio's own
client (the protocol the page uses): a run's files only for the browser session that made it
(no absolute paths, nothing of CLI runs), the Host-header allow-list, ``--auth``, the per-session
upload quota and the deletion of unused uploads, the planner default, and the stop line after
an undo to step 0. ``restoregraph.web.guard`` is also checked on its own (HTTP Basic).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from restoregraph.core.settings import RunContext
from restoregraph.degrade import apply_mixture, parse_mixture
from restoregraph.imageio import load_image, save_image
from tests.conftest import crop

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

REPO = Path(__file__).resolve().parents[1]
TOKEN = "test-token-0123456789abcdef"
QUOTA_MB = 4.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    port: int
    home: Path
    log: Path


def _start(tmp: Path, *args: str) -> Iterator[Server]:
    port = _free_port()
    home = tmp / "home"
    log_path = tmp / "server.log"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("GRADIO_TEMP_DIR", None)
    env.pop("RESTOREGRAPH_WEB_AUTH", None)
    cmd = [sys.executable, "-m", "restoregraph", "serve", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*cmd, "--home", str(home), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp,
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"server exited ({proc.returncode}):\n{log_path.read_text()}")
                try:
                    # any answer (200, or 401 with --auth) means it is up
                    httpx.get(url + "gradio_api/startup-events", timeout=2)
                    if httpx.head(url, timeout=2).status_code in (200, 401):
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"server did not start in 120 s:\n{log_path.read_text()}")
                time.sleep(0.3)
            yield Server(url, port, home, log_path)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    server_log = log_path.read_text()
    assert "Traceback" not in server_log, server_log


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The default settings (no --planner), a 4 MB quota and one extra Host name."""
    tmp = tmp_path_factory.mktemp("web-security")
    yield from _start(tmp, "--upload-quota-mb", str(QUOTA_MB), "--allowed-host", "photos.lan")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A token login, and unused uploads deleted after 3 s."""
    tmp = tmp_path_factory.mktemp("web-auth")
    yield from _start(tmp, "--auth", TOKEN, "--unused-upload-minutes", "0.05")


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import skimage.data

    img = crop(skimage.data.astronaut(), 128)
    out, _ = apply_mixture(img, parse_mixture("noise:2+jpeg:2"), seed=0)
    return save_image(out, tmp_path_factory.mktemp("photo") / "holiday photo.png")


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 1.5 MB (random pixels do not compress)."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("big") / "big.png"
    Image.fromarray(rng.integers(0, 256, (720, 720, 3), dtype=np.uint8)).save(path)
    assert 1.4e6 < path.stat().st_size < 1.6e6
    return path


def new_session(url: str, **kwargs: Any) -> dict[str, str]:
    """A browser session: the cookie the server sets on the first answer."""
    response = httpx.get(url, **kwargs)
    assert response.status_code == 200, response.text
    cookies = dict(response.cookies)
    assert any(k.startswith("rg_session_") for k in cookies), response.headers
    return cookies


def client(url: str, cookies: dict[str, str], tmp: Path, **headers: str) -> Any:
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return gradio_client.Client(
        url,
        headers={"Cookie": cookie, **headers},
        verbose=False,
        download_files=str(tmp / "downloads"),
    )


def texts(outputs: Any) -> list[str]:
    """Every string in a handler's outputs (markdown, status, chat messages)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    walk(outputs)
    return found


def steps_of(outputs: Any) -> str:
    return next(t for t in texts(outputs) if "**run:**" in t)


def absolute_paths(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [p for v in value.values() for p in absolute_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in absolute_paths(v)]
    return [value] if isinstance(value, str) and os.path.isabs(value) else []


@dataclass
class Restored:
    client: Any
    cookies: dict[str, str]
    run_id: str
    outputs: Any


@pytest.fixture(scope="module")
def restored(server: Server, photo: Path, tmp_path_factory: pytest.TempPathFactory) -> Restored:
    """Session A: upload the noisy photo and ask for the grain to go."""
    cookies = new_session(server.url)
    c = client(server.url, cookies, tmp_path_factory.mktemp("client-a"))
    uploaded = c.predict(gradio_client.handle_file(str(photo)), api_name="/on_upload")
    assert any("Photo loaded (128×128 px)" in t for t in texts(uploaded)), uploaded
    outputs = c.predict("remove the grain", [], api_name="/on_send")
    match = re.search(r"\*\*run:\*\* `([^`]+)`", steps_of(outputs))
    assert match, outputs
    return Restored(c, cookies, match.group(1), outputs)


# ---- item 8: a run's files only for its browser session -------------------------------------
def test_cli_runs_are_not_served_to_anyone(server: Server) -> None:
    run_id = "20260101-120000-000000-photo"  # a CLI run id: a time stamp and the file name
    run_dir = server.home / "runs" / run_id
    run_dir.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(run_dir / "input.png")
    meta = {"run_id": run_id, "input": "/home/someone/private/photo.png", "settings": {}}
    (run_dir / "run.json").write_text(json.dumps(meta))
    (run_dir / "report.html").write_text("<p>/home/someone/private/photo.png</p>")
    stranger = new_session(server.url)
    for name in ("input.png", "run.json", "report.html"):
        by_path = httpx.get(f"{server.url}gradio_api/file={run_dir / name}")
        assert by_path.status_code in (403, 404), (name, by_path.status_code)
        assert httpx.get(f"{server.url}runs/{run_id}/{name}").status_code == 404
        assert httpx.get(f"{server.url}runs/{run_id}/{name}", cookies=stranger).status_code == 404
    # no way out of the run directory either
    traversal = httpx.get(f"{server.url}runs/{run_id}/..%2F..%2Fcheckpoints.sqlite")
    assert traversal.status_code == 404


def test_a_web_run_is_served_only_to_its_session(
    server: Server, restored: Restored, photo: Path
) -> None:
    url, run_id, mine = server.url, restored.run_id, restored.cookies
    assert f"[report](runs/{run_id}/report.html)" in steps_of(restored.outputs)
    base = f"{url}runs/{run_id}/"
    got: dict[str, httpx.Response] = {}
    for name in ("input.png", "restored.png", "report.html", "run.json"):
        got[name] = httpx.get(base + name, cookies=mine)
        assert got[name].status_code == 200, (name, got[name].text)
    assert got["input.png"].content == photo.read_bytes()
    assert got["report.html"].headers["content-type"].startswith("text/html")
    home = str(server.home.resolve())
    for name in ("report.html", "run.json"):
        assert home not in got[name].text and str(server.home) not in got[name].text, name
    meta = got["run.json"].json()
    assert absolute_paths(meta) == [], meta
    assert meta["input"] == f"runs/{run_id}/input.png"
    # the download button's file is the current result
    download = next(
        o["value"]
        for o in restored.outputs
        if isinstance(o, dict) and str(o.get("value", "")).endswith("restored.png")
    )
    assert Path(download).read_bytes() == got["restored.png"].content
    other = new_session(url)
    for name in ("input.png", "restored.png", "report.html", "run.json", "nothing.txt"):
        assert httpx.get(base + name, cookies=other).status_code == 404, name
        assert httpx.get(base + name).status_code == 404, name
        assert httpx.get(
            f"{url}gradio_api/file={server.home / 'runs' / run_id / name}"
        ).status_code in (
            403,
            404,
        )


# ---- item 9: Host header, upload quota, unused uploads, login --------------------------------
def test_only_allowed_host_names_are_answered(server: Server) -> None:
    evil = httpx.get(server.url, headers={"Host": "evil.example"})
    assert evil.status_code == 400
    assert "invalid Host header" in evil.text and "--allowed-host" in evil.text
    rebinding = httpx.get(
        f"{server.url}gradio_api/info", headers={"Host": f"evil.example:{server.port}"}
    )
    assert rebinding.status_code == 400
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "photos.lan", "[::1]"):
        assert httpx.get(server.url, headers={"Host": host}).status_code == 200, host


def test_upload_quota_is_per_session(server: Server, big_photo: Path, tmp_path: Path) -> None:
    heavy = new_session(server.url)
    c = client(server.url, heavy, tmp_path)
    for _ in range(2):  # 2 x 1.5 MB of the 4 MB quota
        out = c.predict(gradio_client.handle_file(str(big_photo)), api_name="/on_upload")
        assert any("Photo loaded (720×720 px)" in t for t in texts(out)), out
    files = {"files": ("big.png", big_photo.read_bytes(), "image/png")}
    third = httpx.post(f"{server.url}gradio_api/upload", cookies=heavy, files=files)
    assert third.status_code == 413
    assert "upload quota reached" in third.text and "--upload-quota-mb" in third.text
    assert "4.0 MB" in third.text
    with pytest.raises(Exception, match="413"):
        c.predict(gradio_client.handle_file(str(big_photo)), api_name="/on_upload")
    light = new_session(server.url)  # another browser session has its own quota
    accepted = httpx.post(f"{server.url}gradio_api/upload", cookies=light, files=files)
    assert accepted.status_code == 200 and accepted.json()[0].endswith("big.png")


def test_login_is_required_with_auth(auth_server: Server) -> None:
    url = auth_server.url
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    assert "login required" in anonymous.text
    assert httpx.get(f"{url}gradio_api/info").status_code == 401
    assert (
        httpx.get(url, headers={"Authorization": "Bearer wrong-token-xxxxxxxx"}).status_code == 401
    )
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert httpx.get(url, auth=("anyone", TOKEN)).status_code == 200
    assert httpx.get(url, auth=("anyone", "not-the-token")).status_code == 401
    link = httpx.get(f"{url}?token={TOKEN}&lang=en")
    assert link.status_code == 303 and link.headers["location"] == "/?lang=en"
    login = {k: v for k, v in link.cookies.items() if k.startswith("rg_auth_")}
    assert login, link.headers
    assert httpx.get(url, cookies=login).status_code == 200
    assert httpx.get(url, cookies={k: "forged" for k in login}).status_code == 401
    bad_host = httpx.get(url, headers={"Host": "evil.example", "Authorization": f"Bearer {TOKEN}"})
    assert bad_host.status_code == 400


def test_unused_uploads_are_deleted(auth_server: Server, photo: Path, tmp_path: Path) -> None:
    """--unused-upload-minutes 0.05: an upload nobody wrote a message about goes after 3 s,
    with gradio's temporary copy of an upload that was never stored."""
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    cookies = new_session(auth_server.url, headers=bearer)
    c = client(auth_server.url, cookies, tmp_path, **bearer)
    out = c.predict(gradio_client.handle_file(str(photo)), api_name="/on_upload")
    assert any("Photo loaded" in t for t in texts(out)), out
    runs = auth_server.home / "runs"
    stored = [p for p in runs.iterdir() if p.name.startswith("web-")]
    assert len(stored) == 1 and (stored[0] / "input.png").exists()
    raw = httpx.post(
        f"{auth_server.url}gradio_api/upload",
        headers=bearer,
        cookies=cookies,
        files={"files": ("left.png", photo.read_bytes(), "image/png")},
    )
    assert raw.status_code == 200
    left = Path(raw.json()[0])
    assert left.exists()
    deadline = time.monotonic() + 60
    while (stored[0].exists() or left.exists()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not stored[0].exists(), "the unused upload was not deleted"
    assert not left.exists(), "gradio's copy of an upload never stored was not deleted"
    reply = c.predict("remove the grain", [], api_name="/on_send")
    assert any("deleted after 0.05 minutes" in t and "upload it again" in t for t in texts(reply))


def test_a_public_host_needs_auth(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.pop("RESTOREGRAPH_WEB_AUTH", None)
    base = [sys.executable, "-m", "restoregraph", "serve", "--home", str(tmp_path / "h")]
    for extra, needle in (
        (["--host", "0.0.0.0"], "add --auth TOKEN or --auth USER:PASSWORD"),
        (["--host", "192.168.1.5"], "--host 192.168.1.5 would let anyone"),
        (["--host", "0.0.0.0", "--auth", "short"], "--auth TOKEN needs at least 16 characters"),
        (["--auth", "ann:pw"], "password of at least 8 characters"),
    ):
        done = subprocess.run(
            [*base, *extra], capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
        )
        assert done.returncode == 2, (extra, done.stdout, done.stderr)
        assert needle in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "h").exists()  # refused before anything was created


def test_guard_basic_login_with_user_and_password() -> None:
    """USER:PASSWORD is HTTP Basic; the guard alone, through httpx's ASGI transport."""
    import asyncio

    from restoregraph.web.guard import Auth, WebGuard, allowed_hosts

    async def hello(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})

    class NoFiles:
        def session_file(self, session: str, run_id: str, name: str) -> Any:
            raise FileNotFoundError(name)

        def quota_error(self, session: str, incoming: int) -> None:
            return None

        def note_raw_upload(self, session: str, paths: list[Path]) -> None:
            return None

    guard = WebGuard(
        hello,
        hosts=allowed_hosts("127.0.0.1", ["*.example.org"]),
        files=NoFiles(),
        auth=Auth.parse("ann:correct horse"),
    )

    async def fetch(**kwargs: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            return await http.get("/", **kwargs)

    assert asyncio.run(fetch()).status_code == 401
    assert asyncio.run(fetch(auth=("ann", "wrong password"))).status_code == 401
    assert asyncio.run(fetch(auth=("bob", "correct horse"))).status_code == 401
    ok = asyncio.run(fetch(auth=("ann", "correct horse")))
    assert ok.status_code == 200 and ok.text == "hello"
    # a user:password login takes no token, and a sub-domain pattern matches
    assert asyncio.run(fetch(params={"token": "correct horse"})).status_code == 401
    assert (
        asyncio.run(
            fetch(auth=("ann", "correct horse"), headers={"Host": "photos.example.org"})
        ).status_code
        == 200
    )
    assert asyncio.run(fetch(headers={"Host": "example.org.evil"})).status_code == 400


# ---- item 10: the planner default, and the stop line at step 0 ------------------------------
def test_planner_default_is_runcontexts_everywhere(restored: Restored, server: Server) -> None:
    from restoregraph.cli.main import app

    default = RunContext().planner
    help_text = " ".join(CliRunner().invoke(app, ["serve", "--help"]).output.split())
    assert re.search(r"--planner TEXT .*?\[default: (\w+)\]", help_text).group(1) == default  # type: ignore[union-attr]
    doc = (REPO / "docs" / "web.md").read_text()
    row = re.search(r"^\| `--planner NAME` \| `(\w+)` \|", doc, re.M)
    assert row and row.group(1) == default, "docs/web.md's --planner default"
    # the running server (started without --planner) plans with it
    meta = httpx.get(
        f"{server.url}runs/{restored.run_id}/run.json", cookies=restored.cookies
    ).json()
    assert meta["settings"]["planner"] == default


def test_undo_to_step_0_reports_the_inputs_degradations(restored: Restored, server: Server) -> None:
    before = steps_of(restored.outputs)
    assert "accepted" in before  # the grain step ran
    outputs = restored.client.predict(0, [], api_name="/on_undo")
    steps = steps_of(outputs)
    assert "no remaining degradation" not in steps, steps
    match = re.search(r"nothing restored: this is the input; perceived in it: ([^·\n]+)", steps)
    assert match, steps
    perceived = match.group(1)
    assert re.search(r"\w+ \(level [1-3]\)", perceived), perceived  # the noisy input's damage
    # the download is the input again
    restored_png = httpx.get(
        f"{server.url}runs/{restored.run_id}/restored.png", cookies=restored.cookies
    )
    got = load_image(_write(restored_png.content, server.home.parent / "back.png"))
    assert np.array_equal(got, load_image(server.home / "runs" / restored.run_id / "input.png"))


def _write(data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    return path

"""The web app's gate: Host check, login, browser sessions, upload quota and run files.

``WebGuard`` is an ASGI middleware in front of the gradio app (``restoregraph.web.server``
installs it). For every request, in this order:

1. **Host header** (DNS rebinding): only the loopback names, the ``--host`` address and the
   ``--allowed-host`` names are accepted; any other ``Host`` gets ``400``.
2. **Login** (``--auth``): ``user:password`` is HTTP Basic; a token (no colon) is accepted as
   ``Authorization: Bearer TOKEN``, as the Basic password (any user name), or once as
   ``?token=TOKEN``, which sets a login cookie and redirects to the address without it.
   Anything else gets ``401``. Gradio's own start-up probe (``/gradio_api/startup-events`` from
   a loopback address) is let through: it only starts the queue.
3. **Browser session**: a signed random cookie (``rg_session_<port>``), set on the first answer.
   The web app charges uploads to it and shows a run's files only to the session that made it.
4. ``GET /runs/<run-id>/<file>``: the input, ``restored.png``, ``report.html`` and ``run.json``
   (without the server's absolute paths) of a run this session created; anything else ``404``.
5. ``POST /gradio_api/upload``: refused with ``413`` when it would take the session over its
   upload quota; the temporary files gradio stores are charged to the session.

Plain ASGI and the standard library only (no gradio), so it is tested on its own as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import mimetypes
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlencode

from restoregraph.core.errors import InputError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
UPLOAD_PATH = "/gradio_api/upload"
STARTUP_PATH = "/gradio_api/startup-events"
MULTIPART_SLACK = 64 * 1024  # the multipart envelope around an uploaded file's bytes
MIN_TOKEN_CHARS = 16
MIN_PASSWORD_CHARS = 8
SESSION_COOKIE = "rg_session"
AUTH_COOKIE = "rg_auth"

_SESSION_KEY = secrets.token_bytes(32)  # per process: a restarted server issues new sessions
_COOKIE_PORT: list[int] = [0]  # the port in the cookie names (cookies are shared across ports)


class SessionFiles(Protocol):
    """What the guard needs of the workspace (``restoregraph.web.session.Workspace``)."""

    def session_file(self, session: str, run_id: str, name: str) -> tuple[Path, bytes | None]: ...

    def quota_error(self, session: str, incoming: int) -> str | None: ...

    def note_raw_upload(self, session: str, paths: list[Path]) -> None: ...


# ---- hosts ---------------------------------------------------------------------------------
def host_name(header: str) -> str:
    """The host of a ``Host`` header, lower case, without port, brackets or a final dot."""
    value = header.strip().lower()
    if value.startswith("["):  # [::1]:7860
        end = value.find("]")
        return value[1:end] if end > 0 else ""
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The ``Host`` names the server answers: loopback, ``host`` (unless a wildcard address),
    and ``extra`` (``--allowed-host``; ``*`` accepts any, ``*.example.org`` a domain)."""
    names = list(LOOPBACK_NAMES)
    if host_name(host) not in WILDCARD_HOSTS:
        names.append(host_name(host))
    for name in extra:
        name = name.strip().lower()
        if not name:
            raise InputError("--allowed-host must not be empty")
        names.append(name if name == "*" or name.startswith("*.") else host_name(name))
    return tuple(dict.fromkeys(names))


def host_allowed(header: str, hosts: Sequence[str]) -> bool:
    name = host_name(header)
    if not name:
        return False
    for allowed in hosts:
        if allowed == "*" or name == allowed:
            return True
        if allowed.startswith("*.") and name.endswith(allowed[1:]):
            return True
    return False


def is_loopback(host: str) -> bool:
    if host_name(host) == "localhost":
        return True
    try:
        return ipaddress.ip_address(host_name(host)).is_loopback
    except ValueError:
        return False


# ---- login ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Auth:
    """``--auth``: ``user:password`` (HTTP Basic) or a token."""

    user: str
    secret: str

    @property
    def is_token(self) -> bool:
        return not self.user

    @classmethod
    def parse(cls, value: str) -> Auth:
        value = value.strip()
        if ":" in value:
            user, password = value.split(":", 1)
            if not user or len(password) < MIN_PASSWORD_CHARS:
                raise InputError(
                    f"--auth USER:PASSWORD needs a user name and a password of at least "
                    f"{MIN_PASSWORD_CHARS} characters"
                )
            return cls(user, password)
        if len(value) < MIN_TOKEN_CHARS:
            raise InputError(
                f"--auth TOKEN needs at least {MIN_TOKEN_CHARS} characters (for example the "
                "output of: python -c 'import secrets; print(secrets.token_urlsafe())'), "
                "or give USER:PASSWORD"
            )
        return cls("", value)

    def check_basic(self, user: str, password: str) -> bool:
        user_ok = self.is_token or _same(user, self.user)
        return _same(password, self.secret) and user_ok

    def check_token(self, token: str) -> bool:
        return self.is_token and _same(token, self.secret)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# ---- sessions ------------------------------------------------------------------------------
def _sign(value: str) -> str:
    return hmac.new(_SESSION_KEY, value.encode(), hashlib.sha256).hexdigest()[:32]


def new_session() -> str:
    value = secrets.token_urlsafe(18)
    return f"{value}.{_sign(value)}"


def valid_session(session: str) -> bool:
    value, _, mac = session.partition(".")
    return bool(value) and _same(mac, _sign(value))


def cookie_name(base: str) -> str:
    return f"{base}_{_COOKIE_PORT[0]}" if _COOKIE_PORT[0] else base


def session_from_cookies(cookies: dict[str, str]) -> str:
    """The browser session in a request's cookies ('' when none or not one this server issued)."""
    session = cookies.get(cookie_name(SESSION_COOKIE), "")
    return session if valid_session(session) else ""


# ---- the middleware ------------------------------------------------------------------------
def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in header.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name:
            out[name] = value
    return out


def _set_cookie(name: str, value: str) -> tuple[bytes, bytes]:
    return b"set-cookie", f"{name}={value}; Path=/; HttpOnly; SameSite=Lax".encode()


async def _respond(
    send: Send,
    status: int,
    body: bytes | str,
    *,
    content_type: str = "text/plain; charset=utf-8",
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    data = body.encode() if isinstance(body, str) else body
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class WebGuard:
    """The ASGI middleware described in the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: Sequence[str],
        files: SessionFiles,
        auth: Auth | None = None,
        port: int = 0,
        upload_dir: Path | None = None,
    ) -> None:
        self.app = app
        self.hosts = tuple(hosts)
        self.files = files
        self.auth = auth
        self.auth_cookie = secrets.token_urlsafe(32)
        self.upload_dir = upload_dir.resolve() if upload_dir else None
        if port:
            _COOKIE_PORT[0] = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if not host_allowed(headers.get("host", ""), self.hosts):
            await self._refuse(
                scope,
                send,
                400,
                "invalid Host header: this server answers only "
                + ", ".join(self.hosts)
                + " (restoregraph serve --allowed-host NAME)",
            )
            return
        cookies = _cookies(headers.get("cookie", ""))
        extra: list[tuple[bytes, bytes]] = []
        if self.auth is not None and not self._startup_probe(scope):
            verdict = self._login(scope, headers, cookies)
            if verdict == "redirect":
                await self._redirect_without_token(scope, send)
                return
            if verdict == "no":
                await self._refuse(
                    scope,
                    send,
                    401,
                    "login required (restoregraph serve --auth): open this address with "
                    "?token=TOKEN, or log in with the user name and password",
                    [(b"www-authenticate", b'Basic realm="RestoreGraph", charset="UTF-8"')],
                )
                return
            if verdict == "header":
                extra.append(_set_cookie(cookie_name(AUTH_COOKIE), self.auth_cookie))
        session = cookies.get(cookie_name(SESSION_COOKIE), "")
        if not valid_session(session):
            session = new_session()
            cookies[cookie_name(SESSION_COOKIE)] = session
            scope = dict(scope)
            scope["headers"] = [
                (k, v) for k, v in scope.get("headers", []) if k.lower() != b"cookie"
            ]
            cookie_header = "; ".join(f"{k}={v}" for k, v in cookies.items())
            scope["headers"].append((b"cookie", cookie_header.encode("latin-1")))
            extra.append(_set_cookie(cookie_name(SESSION_COOKIE), session))
        if scope["type"] == "http":
            path = scope.get("path", "")
            if path.startswith("/runs/"):
                await self._run_file(scope, send, session, extra)
                return
            if path == UPLOAD_PATH and scope.get("method") == "POST":
                await self._upload(scope, receive, send, session, headers, extra)
                return
        await self.app(scope, receive, _with_headers(send, extra))

    # ---- steps -------------------------------------------------------------------------
    @staticmethod
    def _startup_probe(scope: Scope) -> bool:
        client = scope.get("client") or ("", 0)
        return scope.get("path") == STARTUP_PATH and is_loopback(str(client[0]))

    def _login(self, scope: Scope, headers: dict[str, str], cookies: dict[str, str]) -> str:
        """'cookie' / 'header' (logged in), 'redirect' (a good ?token=), or 'no'."""
        assert self.auth is not None
        if _same(cookies.get(cookie_name(AUTH_COOKIE), ""), self.auth_cookie):
            return "cookie"
        kind, _, credentials = headers.get("authorization", "").partition(" ")
        if kind.lower() == "bearer" and self.auth.check_token(credentials.strip()):
            return "header"
        if kind.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                decoded = ""
            user, _, password = decoded.partition(":")
            if decoded and self.auth.check_basic(user, password):
                return "header"
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if scope["type"] == "http" and self.auth.check_token(query.get("token", "")):
            return "redirect"
        return "no"

    async def _redirect_without_token(self, scope: Scope, send: Send) -> None:
        query = [
            (k, v)
            for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1"))
            if k != "token"
        ]
        location = scope.get("root_path", "") + scope.get("path", "/")
        if query:
            location += "?" + urlencode(query)
        await _respond(
            send,
            303,
            "logged in",
            headers=[
                (b"location", location.encode("latin-1")),
                _set_cookie(cookie_name(AUTH_COOKIE), self.auth_cookie),
            ],
        )

    @staticmethod
    async def _refuse(
        scope: Scope,
        send: Send,
        status: int,
        text: str,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": text[:120]})
            return
        await _respond(send, status, text + "\n", headers=headers)

    async def _run_file(
        self, scope: Scope, send: Send, session: str, extra: list[tuple[bytes, bytes]]
    ) -> None:
        parts = unquote(scope.get("path", "")).split("/")
        if scope.get("method") not in ("GET", "HEAD") or len(parts) != 4:
            await _respond(send, 404, "not found\n", headers=extra)
            return
        _, _, run_id, name = parts
        try:
            path, text = self.files.session_file(session, run_id, name)
            body = text if text is not None else path.read_bytes()
        except (FileNotFoundError, InputError, OSError, ValueError):
            await _respond(send, 404, "not found\n", headers=extra)
            return
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind == "application/json":
            kind += "; charset=utf-8"
        # report.html is the run's own page: no scripts, and shown only in this origin's frames
        security = [
            (
                b"content-security-policy",
                b"default-src 'none'; img-src data:; style-src 'unsafe-inline'",
            ),
            (b"x-frame-options", b"SAMEORIGIN"),
        ]
        if scope.get("method") == "HEAD":
            body = b""
        await _respond(send, 200, body, content_type=kind, headers=[*security, *extra])

    async def _upload(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        session: str,
        headers: dict[str, str],
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        try:
            announced = int(headers["content-length"])
        except (KeyError, ValueError):
            await _respond(send, 411, "an upload needs a Content-Length header\n", headers=extra)
            return
        why = self.files.quota_error(session, max(0, announced - MULTIPART_SLACK))
        if why is not None:
            await _drain(receive, announced)
            await _respond(send, 413, why + "\n", headers=extra)
            return
        chunks: list[bytes] = []
        status: list[int] = []
        send_extra = _with_headers(send, extra)

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            elif message["type"] == "http.response.body" and status and status[0] == 200:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._note_upload(session, b"".join(chunks))
            await send_extra(message)

        await self.app(scope, receive, recording_send)

    def _note_upload(self, session: str, body: bytes) -> None:
        """Charge the files gradio stored (its answer lists their paths) to ``session``."""
        try:
            listed = json.loads(body or b"[]")
        except ValueError:
            return
        if not isinstance(listed, list):
            return
        paths = []
        for item in listed:
            if not isinstance(item, str):
                continue
            path = Path(item).resolve()
            if self.upload_dir is None or self.upload_dir in path.parents:
                paths.append(path)
        self.files.note_raw_upload(session, paths)


async def _drain(receive: Receive, announced: int) -> None:
    """Read a refused request's body (up to 64 MB), so that the client sees the answer rather
    than a reset connection."""
    if announced > 64 * 1024 * 1024:
        return
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def _with_headers(send: Send, extra: Sequence[tuple[bytes, bytes]]) -> Send:
    if not extra:
        return send

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped

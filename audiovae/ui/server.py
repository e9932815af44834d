"""HTTP for :class:`~audiovae.ui.studio.Studio`: one HTML page, a few JSON endpoints, results served from memory.

Starlette (what FastAPI is built on) is enough for one page and five endpoints. Requests run one at a time on a
single worker thread (models are shared and torch already uses every core), and at most ``max_queue`` wait or run
at once: one more gets "busy" (HTTP 503) at once instead of piling up. Results (WAV and PNG) live in a small
in-memory store, so nothing the page produces is left on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import AudiovaeError, ConfigError
from .studio import Result, Studio, Upload, options

log = logging.getLogger("audiovae.ui")


class Busy(Exception):
    """The queue is full."""


class TooLarge(Exception):
    """The request's body grew past the limit (a body sent without a Content-Length, in chunks)."""


def _limited(receive: Any, limit: int) -> Any:
    """``receive`` that raises :class:`TooLarge` once more than ``limit`` body bytes have arrived."""
    seen = 0

    async def wrapped() -> dict:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise TooLarge
        return message

    return wrapped


class WorkQueue:
    """Run blocking work on one thread, at most ``limit`` jobs waiting or running; called from the event loop only
    (so the counter needs no lock)."""

    def __init__(self, limit: int = 4) -> None:
        if limit < 1:
            raise ConfigError(f"--max-queue {limit}: give at least 1")
        self.limit = limit
        self.pending = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audiovae-ui")

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.pending >= self.limit:
            raise Busy(f"the server is busy ({self.pending} requests running or waiting); try again in a moment")
        self.pending += 1
        try:
            return await asyncio.wrap_future(self.executor.submit(fn, *args, **kwargs))
        finally:
            self.pending -= 1

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class ResultStore:
    """The files of the last ``keep`` results, at most ``max_bytes`` in all (the oldest go first; the newest always
    stays), by id, in memory: the page plays and downloads them from here."""

    def __init__(self, keep: int = 32, max_bytes: int = 512_000_000) -> None:
        self.keep, self.max_bytes = keep, max_bytes
        self._items: OrderedDict[str, dict[str, tuple[bytes, str]]] = OrderedDict()

    def _size(self) -> int:
        return sum(len(data) for files in self._items.values() for data, _ in files.values())

    def add(self, files: dict[str, tuple[bytes, str]]) -> str:
        key = uuid.uuid4().hex
        self._items[key] = files
        while len(self._items) > 1 and (len(self._items) > self.keep or self._size() > self.max_bytes):
            self._items.popitem(last=False)
        return key

    def get(self, key: str, name: str) -> tuple[bytes, str] | None:
        return self._items.get(key, {}).get(name)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1 in any spelling)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str:
    """``example.org:7860`` -> ``example.org``; ``[::1]:7860`` -> ``::1``."""
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class LocalOnly:
    """ASGI guard. A POST whose ``Origin`` is another site (a page elsewhere making the browser submit work here)
    is refused; when the server listens on loopback only, so is a request whose ``Host`` is not this computer (DNS
    rebinding would otherwise let another site's page read the answers)."""

    def __init__(self, app: Any, loopback: bool) -> None:
        self.app, self.loopback = app, loopback

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            host = headers.get("host", "")
            origin = headers.get("origin")
            problem = None
            if self.loopback and not is_loopback(_host_name(host)):
                problem = f"host {host!r} refused: this server answers on this computer only"
            elif scope["method"] == "POST" and origin is not None and urlsplit(origin).netloc != host:  # "null" too
                problem = f"request from {origin} refused: only this page may use this server"
            if problem:
                await _error(problem, 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``bytes=START-END`` / ``bytes=START-`` / ``bytes=-SUFFIX`` -> inclusive ``(start, end)``; ``None`` for no
    header or one this does not serve (several ranges, nonsense): then the whole file is sent."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first:
            start, end = int(first), int(last) if last else size - 1
        else:
            start, end = max(0, size - int(last)), size - 1
    except ValueError:
        return None
    end = min(end, size - 1)
    return (start, end) if 0 <= start <= end else None


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _text(form: FormData, key: str, default: str | None = None) -> str | None:
    value = form.get(key)
    return default if value is None or isinstance(value, UploadFile) or value == "" else str(value)


def _number(form: FormData, key: str, kind: type, default: float | int) -> Any:
    value = _text(form, key)
    if value is None:
        return default
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{key} {value!r}: not a{'n integer' if kind is int else ' number'}") from None


async def _upload(form: FormData, key: str) -> Upload | None:
    value = form.get(key)
    if not isinstance(value, UploadFile) or not value.filename:
        return None
    return Upload(value.filename, await value.read())


async def _uploads(form: FormData, key: str) -> list[Upload]:
    return [Upload(v.filename, await v.read()) for v in form.getlist(key) if isinstance(v, UploadFile) and v.filename]


def create_app(studio: Studio, max_queue: int = 4, loopback: bool = True) -> Starlette:
    """The web app over ``studio``; ``loopback``: it listens on this computer only (see :class:`LocalOnly`)."""
    queue, store = WorkQueue(max_queue), ResultStore()
    static = resources.files("audiovae.ui") / "static"
    page = (static / "index.html").read_text(encoding="utf-8")
    body_limit = int(studio.limits.max_request_mb * 1e6)

    def publish(result: Result, started: float) -> dict:
        files = {c.name: (c.wav, "audio/wav") for c in result.clips}
        files |= {f"{title}.png": (png, "image/png") for title, png in result.images.items()}
        key = store.add(files)
        return {"clips": [{"name": c.name, "url": f"/files/{key}/{c.name}", "seconds": round(c.seconds, 3),
                           "sample_rate": c.sample_rate} for c in result.clips],
                "images": {title: f"/files/{key}/{title}.png" for title in result.images},
                "notes": result.notes, "elapsed_s": round(time.perf_counter() - started, 3)}

    def task(parse: Callable[[FormData], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            size = request.headers.get("content-length", "")
            request = Request(request.scope, _limited(request.receive, body_limit))  # a length it did not state
            try:
                if size.isdigit() and int(size) > body_limit:  # refused before a byte of the body is read
                    raise TooLarge
                async with request.form(max_files=8, max_fields=32) as form:
                    fn, args = await parse(form)
                    result = await queue.run(fn, **args)
            except Busy as e:
                return _error(str(e), 503)
            except TooLarge:
                return _error(f"the upload is over the {studio.limits.max_request_mb:g} MB limit of one request", 413)
            except AudiovaeError as e:
                return _error(str(e))
            except HTTPException as e:  # the form itself: malformed, too many files or fields
                return _error(f"the request was refused: {e.detail}", e.status_code)
            except Exception as e:  # noqa: BLE001 - the page gets one line, the terminal the traceback
                log.error("%s failed:\n%s", request.url.path, traceback.format_exc())
                return _error(f"internal error ({type(e).__name__}: {e}); the server's terminal has the details", 500)
            return JSONResponse(publish(result, started))

        return endpoint

    async def parse_convert(form: FormData) -> tuple[Callable, dict]:
        source = await _upload(form, "file")
        if source is None:
            raise ConfigError("choose or record a clip to convert first")
        refs = await _uploads(form, "reference")
        speaker = None if refs else _text(form, "speaker")
        if not refs and speaker is None:
            raise ConfigError("pick a target speaker, or give a reference recording of the target voice")
        return studio.convert, {"source": source, "model": _text(form, "model", "voice_conversion"),
                                "speaker": speaker, "references": refs, "pitch": _text(form, "pitch", "model"),
                                "vocoder": _text(form, "vocoder")}

    async def parse_denoise(form: FormData) -> tuple[Callable, dict]:
        source = await _upload(form, "file")
        if source is None:
            raise ConfigError("choose or record a clip to denoise first")
        return studio.denoise, {"source": source, "model": _text(form, "model", "denoise"),
                                "strength": _number(form, "strength", float, 1.0),
                                "method": _text(form, "method", "mask")}

    async def parse_music(form: FormData) -> tuple[Callable, dict]:
        return studio.music, {"model": _text(form, "model", "music"), "mode": _text(form, "mode", "sample"),
                              "seed": _number(form, "seed", int, 0), "seconds": _number(form, "seconds", float, 10.0),
                              "temperature": _number(form, "temperature", float, 1.0),
                              "count": _number(form, "count", int, 1), "a": await _upload(form, "a"),
                              "b": await _upload(form, "b"), "steps": _number(form, "steps", int, 5),
                              "path": _text(form, "path", "linear")}

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    catalogue = {"models": studio.catalogue(), "options": options(),
                 "limits": asdict(studio.limits) | {"max_request_mb": studio.limits.max_request_mb}}

    async def models(request: Request) -> Response:  # built once, so the page loads even while work is queued
        return JSONResponse(catalogue)

    async def curve(request: Request) -> Response:
        try:
            png = await queue.run(studio.curve, request.path_params["name"])
        except (AudiovaeError, Busy) as e:
            return _error(str(e), 404 if isinstance(e, AudiovaeError) else 503)
        return Response(png, media_type="image/png") if png else _error("no training log for this model", 404)

    async def files(request: Request) -> Response:
        item = store.get(request.path_params["key"], request.path_params["name"])
        if item is None:
            return _error("this result has expired; run it again", 404)
        data, mime = item
        headers = {"Cache-Control": "no-store", "Accept-Ranges": "bytes"}
        span = _byte_range(request.headers.get("range"), len(data))
        if span is None:
            return Response(data, media_type=mime, headers=headers)
        start, end = span  # the audio player seeks with ranges
        return Response(data[start:end + 1], 206, media_type=mime,
                        headers=headers | {"Content-Range": f"bytes {start}-{end}/{len(data)}"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            queue.close()  # the app's own; the studio is its creator's to close

    return Starlette(lifespan=lifespan, middleware=[Middleware(LocalOnly, loopback=loopback)], routes=[
        Route("/", index),
        Route("/api/models", models),
        Route("/api/models/{name:path}/curve.png", curve),
        Route("/api/convert", task(parse_convert), methods=["POST"]),
        Route("/api/denoise", task(parse_denoise), methods=["POST"]),
        Route("/api/music", task(parse_music), methods=["POST"]),
        Route("/files/{key}/{name}", files),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ])


def serve(host: str = "127.0.0.1", port: int = 7860, models_dir: str | None = None, device: str = "auto",
          max_queue: int = 4, limits: Any = None, on_ready: Callable[[str], None] | None = None) -> None:
    """Load the models (building the app's catalogue), then serve the page until interrupted; the scratch folder
    is removed on the way out."""
    import uvicorn

    _check_port(host, port)
    studio = Studio(models_dir, device, limits)
    try:
        app = create_app(studio, max_queue, loopback=is_loopback(host))
        if on_ready:
            on_ready(f"http://{'[' + host + ']' if ':' in host else host}:{port}")
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        studio.close()


def _check_port(host: str, port: int) -> None:
    """Fail with one line, before the models load, when the address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port or --host"
                              ) from None

"""HTTP for :class:`~audiovae.ui.studio.Studio`: one HTML page, a few JSON endpoints, results served from memory.

Starlette (what FastAPI is built on) is enough for one page and a few endpoints. Requests run one at a time on a
single worker thread (models are shared and torch already uses every core), and at most ``max_queue`` wait or run
at once: one more gets "busy" (HTTP 503) at once instead of piling up. Results (WAV and PNG) live in a small
in-memory store, so nothing the page produces is left on disk.

A request may name a job (``POST /api/convert?job=ID``, an id the page makes up): while it waits and runs,
``GET /api/jobs/ID`` says its stage, step and elapsed seconds, and ``POST /api/jobs/ID/cancel`` stops it at its next
check (see :class:`~audiovae.ui.studio.Progress`); the request then answers 409 "cancelled ...". Any job, named or
not, is also cancelled when its client goes away (the tab closed or reloaded) and when the server is stopped (Ctrl-C),
so neither waits for work nobody will see.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
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
from .studio import EXAMPLES, Cancelled, Progress, Result, Studio, Upload, options

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


class Job:
    """A request's work: its progress (shared with the worker thread, which sets ``state`` running) and how it
    ended."""

    def __init__(self) -> None:
        self.progress = Progress()
        self.state = "queued"  # queued, running, done, cancelled, failed
        self.error: str | None = None
        self.elapsed_s: float | None = None  # once it ended

    def snapshot(self, key: str) -> dict:
        snap = self.progress.snapshot()
        if self.elapsed_s is not None:
            snap["elapsed_s"] = self.elapsed_s
        return {"job": key, "state": self.state, "error": self.error} | snap


class Jobs:
    """Every request's job while it waits or runs (to cancel them all on the way out), and by id the named ones:
    those waiting or running and the last ``keep`` that ended (a late poll still reads how a job ended). Used from
    the event loop, but for :meth:`cancel_all`, which only sets flags."""

    ID = re.compile(r"[A-Za-z0-9_-]{8,64}")

    def __init__(self, keep: int = 64) -> None:
        self.keep = keep
        self._named: OrderedDict[str, Job] = OrderedDict()
        self._active: set[Job] = set()

    def start(self, key: str | None) -> Job:
        """A new job under ``key`` (``None``: an unnamed one, not listed)."""
        job = Job()
        if key is not None:
            if not self.ID.fullmatch(key):
                raise ConfigError(f"job id {key[:80]!r}: give 8 to 64 letters, digits, - or _")
            if key in self._named:
                raise ConfigError(f"job id {key!r} is already in use")
            self._named[key] = job
            ended = [k for k, j in self._named.items() if j.elapsed_s is not None]
            for k in ended[:max(0, len(ended) - self.keep)]:
                del self._named[k]
        self._active.add(job)
        return job

    def end(self, job: Job, state: str, error: str | None) -> None:
        job.state, job.error = state, error
        job.elapsed_s = round(time.perf_counter() - job.progress.started, 3)
        self._active.discard(job)

    def get(self, key: str) -> Job | None:
        return self._named.get(key)

    def cancel_all(self) -> None:
        for job in list(self._active):
            job.progress.cancel()


async def _cancel_when_gone(receive: Any, progress: Progress) -> None:
    """Once the request's body is read, the next ASGI message is the client going away (the page closed or
    reloaded; no one will read the answer): the job is cancelled."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            progress.cancel()
            return


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
    queue, store, jobs = WorkQueue(max_queue), ResultStore(), Jobs()
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

    def running(job: Job, fn: Callable[..., Result], args: dict) -> Result:
        """On the worker thread: a job cancelled while it waited stops before it starts."""
        job.state = "running"
        job.progress.check()
        return fn(**args, progress=job.progress)

    async def attempt(request: Request, job: Job, parse: Callable[[FormData], Any]) -> tuple[Response, str | None]:
        """The request's answer, and the error it reports (``None`` for a result)."""
        size = request.headers.get("content-length", "")
        receive = request.receive
        request = Request(request.scope, _limited(receive, body_limit))  # a length it did not state
        try:
            if size.isdigit() and int(size) > body_limit:  # refused before a byte of the body is read
                raise TooLarge
            async with request.form(max_files=8, max_fields=32) as form:
                fn, args = await parse(form)
                watcher = asyncio.ensure_future(_cancel_when_gone(receive, job.progress))
                try:
                    result = await queue.run(running, job, fn, args)
                finally:
                    watcher.cancel()
            job.progress.check()  # cancelled just as it finished: the page asked not to wait for it
        except Cancelled as e:
            status, message = 409, str(e)
        except Busy as e:
            status, message = 503, str(e)
        except TooLarge:
            status, message = 413, f"the upload is over the {studio.limits.max_request_mb:g} MB limit of one request"
        except AudiovaeError as e:
            status, message = 400, str(e)
        except HTTPException as e:  # the form itself: malformed, too many files or fields
            status, message = e.status_code, f"the request was refused: {e.detail}"
        except Exception as e:  # noqa: BLE001 - the page gets one line, the terminal the traceback
            log.error("%s failed:\n%s", request.url.path, traceback.format_exc())
            status, message = 500, (f"internal error ({type(e).__name__}: {e}); the server's terminal has the "
                                    "details")
        else:
            return JSONResponse(publish(result, job.progress.started)), None
        return _error(message, status), message

    def task(parse: Callable[[FormData], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                job = jobs.start(request.query_params.get("job"))
            except AudiovaeError as e:
                return _error(str(e))
            try:
                response, error = await attempt(request, job, parse)
            except BaseException:  # the request's task itself cancelled: its job too
                job.progress.cancel()
                jobs.end(job, "cancelled", "the request was dropped")
                raise
            jobs.end(job, "done" if error is None else "cancelled" if response.status_code == 409 else "failed", error)
            return response

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

    async def job_state(request: Request) -> Response:
        key = request.path_params["key"]
        job = jobs.get(key)
        return _error("no such job (it ended long ago, or never started)", 404) if job is None else JSONResponse(
            job.snapshot(key))

    async def job_cancel(request: Request) -> Response:
        """Ask a job to stop; it does at its next check (between stages, after a step), and its request then
        answers 409. A job that already ended is left as it ended."""
        key = request.path_params["key"]
        job = jobs.get(key)
        if job is None:
            return _error("no such job (it ended long ago, or never started)", 404)
        if job.elapsed_s is None:
            job.progress.cancel()
        return JSONResponse(job.snapshot(key))

    async def example(request: Request) -> Response:
        try:
            data = studio.example(request.path_params["name"])
        except AudiovaeError as e:
            return _error(str(e), 404)
        return Response(data, media_type="audio/wav", headers={"Cache-Control": "no-store"})

    catalogue = {"models": studio.catalogue(), "options": options(), "examples": EXAMPLES,
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

    app = Starlette(lifespan=lifespan, middleware=[Middleware(LocalOnly, loopback=loopback)], routes=[
        Route("/", index),
        Route("/api/models", models),
        Route("/api/models/{name:path}/curve.png", curve),
        Route("/api/convert", task(parse_convert), methods=["POST"]),
        Route("/api/denoise", task(parse_denoise), methods=["POST"]),
        Route("/api/music", task(parse_music), methods=["POST"]),
        Route("/api/jobs/{key}", job_state),
        Route("/api/jobs/{key}/cancel", job_cancel, methods=["POST"]),
        Route("/api/examples/{name}", example),
        Route("/files/{key}/{name}", files),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ])
    app.state.jobs = jobs  # for serve(): Ctrl-C cancels them
    return app


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
        server = _uvicorn_server()(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        server.jobs = app.state.jobs
        server.run()
    finally:
        studio.close()


def _uvicorn_server() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, which on Ctrl-C first cancels the running jobs: it waits for open requests to be
        answered, and a cancelled job answers at its next check instead of at its end."""

        jobs: Jobs | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.jobs is not None:
                self.jobs.cancel_all()
            super().handle_exit(sig, frame)

    return Server


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

"""The web page's work without a browser: the studio (each tab's call into the API), checked uploads, the request
queue, training curves. The page itself is tested in a real browser in test_ui_browser.py."""

from __future__ import annotations

import asyncio
import io
import shutil
import sys
import threading

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, free_port, run_cli, sine, training_run

from audiovae.errors import ConfigError
from audiovae.pretrained import bundled_path
from audiovae.ui import require_extra
from audiovae.ui.studio import Cancelled, Limits, Progress, Studio, Upload, UploadError, discover


def wav_upload(name: str, wave: np.ndarray, sr: int = SR) -> Upload:
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV", subtype="PCM_16")
    return Upload(name, buf.getvalue())


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    s = Studio(limits=Limits(max_upload_mb=2.0, max_seconds=8.0), device="cpu")
    yield s
    s.close()
    assert not s.scratch.exists()


def read(wav: bytes) -> tuple[np.ndarray, int]:
    return sf.read(io.BytesIO(wav), dtype="float32")


def test_convert_gives_the_same_audio_as_the_cli(studio, example_path, tmp_path):
    upload = Upload("example.wav", example_path.read_bytes())
    result = studio.convert(upload, speaker="B")
    (clip,) = result.clips
    page, sr = read(clip.wav)
    assert clip.name == "example_B.wav" and sr == clip.sample_rate == 22050
    assert result.images["spectrogram"].startswith(b"\x89PNG")
    r = run_cli("convert", example_path, "--speaker", "B", "-o", tmp_path / "cli.wav", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    cli, _ = sf.read(tmp_path / "cli.wav", dtype="float32")
    assert page.shape == cli.shape == (sf.info(example_path).frames,)
    np.testing.assert_array_equal(page, cli)  # the same pipeline call, the same 16-bit WAV
    assert list(studio.scratch.iterdir()) == []  # the upload's scratch file is gone


def test_one_shot_reference_and_pitch_as_the_api(studio, example_path):
    from audiovae import api, audio

    vc = api.load("voice_conversion", "cpu")
    ex = Upload("example.wav", example_path.read_bytes())
    one_shot = studio.convert(ex, references=[Upload("some one.wav", example_path.read_bytes())])
    shifted = studio.convert(ex, speaker="D", pitch="-5")
    expected = {"one_shot": vc.convert(example_path, reference=example_path)[0],
                "shifted": vc.convert(example_path, "D", pitch=-5)[0]}
    for r, want in zip((one_shot, shifted), expected.values(), strict=True):
        np.testing.assert_array_equal(read(r.clips[0].wav)[0], read(audio.wav_bytes(want, 22050))[0])
    assert one_shot.clips[0].name == "example_some_one.wav"
    plain, _ = read(studio.convert(ex, speaker="D").clips[0].wav)
    assert not np.allclose(plain, read(shifted.clips[0].wav)[0], atol=1e-3)  # the pitch setting reached the model
    with pytest.raises(UploadError, match="at most 3 reference recordings"):
        studio.convert(ex, references=[ex] * 4)


@pytest.mark.parametrize("make, message", [
    (lambda: Upload("empty.wav", b""), "empty.wav: the file is empty"),
    (lambda: Upload("notes.wav", b"this is text, not audio\n" * 10), "notes.wav: not a readable audio file"),
    (lambda: wav_upload("long.wav", sine(220, 9.0, SR)), "long.wav: 9.0 s is over the 8 s limit"),
    (lambda: Upload("big.wav", b"\0" * 2_100_000), "big.wav: 2.1 MB is over the 2 MB upload limit"),
])
def test_bad_uploads_are_one_line_naming_the_file(studio, make, message):
    with pytest.raises(UploadError) as e:
        studio.convert(make(), speaker="B")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert str(studio.scratch) not in str(e.value)
    assert list(studio.scratch.iterdir()) == []


def test_bad_requests_are_config_errors(studio, example_path):
    ex = Upload("example.wav", example_path.read_bytes())
    with pytest.raises(ConfigError, match="unknown speaker 'Z'"):
        studio.convert(ex, speaker="Z")
    with pytest.raises(ConfigError, match="is a music model, not a convert model"):
        studio.convert(ex, model="music", speaker="B")
    with pytest.raises(ConfigError, match="vocoder 'wavenet'"):
        studio.convert(ex, speaker="B", vocoder="wavenet")
    with pytest.raises(ConfigError, match="count 9: give 1 to 8"):
        studio.music(count=9)
    with pytest.raises(ConfigError, match="no model named 'nope'"):
        studio.model("nope")


def test_denoise_keeps_rate_channels_and_length(studio):
    rng = np.random.default_rng(0)
    sr = 16000
    clean = np.stack([sine(300, 2.0, sr), sine(300, 2.0, sr) * 0.5])
    noisy = (clean + 0.05 * rng.standard_normal(clean.shape)).astype(np.float32)
    upload = wav_upload("noisy.wav", noisy.T, sr)
    result = studio.denoise(upload, strength=0.7)
    out, out_sr = read(result.clips[0].wav)
    assert out_sr == sr and out.shape == noisy.T.shape
    assert result.clips[0].name == "noisy_denoised.wav"
    dry, _ = read(studio.denoise(upload, strength=0.0).clips[0].wav)
    np.testing.assert_allclose(dry, noisy.T, atol=2 / 32768)  # strength 0 is the input


def test_music_modes(studio, example_path):
    samples = studio.music(seed=3, seconds=1.5, count=2)
    assert [c.name for c in samples.clips] == ["sample_003.wav", "sample_004.wav"]
    waves = [read(c.wav)[0] for c in samples.clips]
    assert all(abs(w.size - 1.5 * 22050) <= 256 for w in waves)
    assert not np.allclose(waves[0], waves[1])
    again = studio.music(seed=4, seconds=1.5, count=1)
    np.testing.assert_array_equal(read(again.clips[0].wav)[0], waves[1])  # clip i uses seed + i, as the CLI
    walk = studio.music(mode="walk", seed=1, seconds=2.0)
    assert len(walk.clips) == 1 and abs(walk.clips[0].seconds - 2.0) < 0.02
    ex = Upload("example.wav", example_path.read_bytes())
    path = studio.music(mode="interpolate", a=ex, b=ex, steps=3, path="slerp")
    assert path.clips[0].name == "example_to_example.wav"
    assert path.clips[0].seconds == pytest.approx(3 * 5.0 + 2 * 0.3, abs=0.05)


def test_examples_are_the_bundled_clip_and_a_seeded_noisy_copy(studio, example_path):
    assert studio.example("example.wav") == example_path.read_bytes()
    clean, sr = read(example_path.read_bytes())
    noisy, noisy_sr = read(studio.example("example_noisy.wav"))
    assert noisy_sr == sr and noisy.shape == clean.shape and np.abs(noisy).max() <= 0.95 + 1 / 32768
    scale = float(noisy @ clean / (clean @ clean))  # the clip is in it (scaled down so that the sum does not clip)
    noise = noisy - scale * clean
    assert 0.9 < scale < 1.01 and 10 * np.log10(np.sum((scale * clean) ** 2) / np.sum(noise ** 2)) == pytest.approx(
        5.0, abs=0.1)
    other = Studio(device="cpu")
    try:
        assert other.example("example_noisy.wav") == studio.example("example_noisy.wav")  # seeded
    finally:
        other.close()
    with pytest.raises(ConfigError, match="no example named 'x.wav'"):
        studio.example("x.wav")


class CancelAt(Progress):
    """Progress that cancels itself (as the page's button would) once ``stage`` reaches step ``at``."""

    def __init__(self, stage: str, at: int) -> None:
        super().__init__()
        self.when, self.seen = (stage, at), []

    def stage(self, name: str, total: int = 0) -> None:
        self.seen.append(name)
        super().stage(name, total)

    def advance(self) -> None:
        snap = self.snapshot()
        if (snap["stage"], snap["step"] + 1) == self.when:
            self.cancel()
        super().advance()


def test_progress_counts_steps_and_cancel_stops_the_work(studio, example_path):
    from torch.optim.optimizer import _global_optimizer_post_hooks

    p = CancelAt("sampling clips", 1)
    with pytest.raises(Cancelled, match=r"^cancelled while sampling clips \(step 1 of 3\)$"):
        studio.music(seconds=0.5, count=3, progress=p)
    assert p.seen == ["loading the model", "sampling clips"]

    clean, sr = read(example_path.read_bytes())
    ex = wav_upload("short.wav", clean[: int(3.1 * sr)], sr)  # the fit needs 3 s; its set-up grows with them
    p = CancelAt("fitting the reference voice", 2)  # the one-shot fit's optimiser steps, counted by a torch hook
    with pytest.raises(Cancelled, match=r"^cancelled while fitting the reference voice \(step 2 of 350\)$"):
        studio.convert(ex, references=[ex], progress=p)
    assert p.seen == ["loading the model", "reading the input", "fitting the reference voice"]
    assert len(_global_optimizer_post_hooks) == 0  # the hook went with the job
    assert list(studio.scratch.iterdir()) == []
    gone = Progress()
    gone.cancel()  # cancelled before it started: nothing runs
    with pytest.raises(Cancelled, match="^cancelled while waiting for the server$"):
        studio.denoise(ex, progress=gone)


def test_models_folder_curves_and_a_broken_checkpoint(tmp_path):
    run = training_run(tmp_path / "models" / "my_run")
    shutil.copy(bundled_path("denoise"), run / "exported.safetensors")  # beside the log, but not the run's model
    (tmp_path / "models" / "broken.safetensors").write_bytes(b"\0" * 100)
    assert [e.name for e in discover(tmp_path / "models")][-3:] == ["broken", "my_run/exported", "my_run"]
    s = Studio(tmp_path / "models", device="cpu")
    try:
        rows = {r["name"]: r for r in s.catalogue()}
        assert rows["my_run"]["task"] == "music" and rows["my_run"]["curve"] is True
        assert rows["my_run/exported"]["task"] == "denoise" and rows["my_run/exported"]["curve"] is False
        assert rows["music"]["curve"] is False and rows["voice_conversion"]["speakers"][1]["name"] == "B"
        assert rows["broken"]["task"] == "error" and "broken.safetensors" in rows["broken"]["error"]
        png = s.curve("my_run")
        assert png is not None and png.startswith(b"\x89PNG")
        assert s.curve("music") is None
    finally:
        s.close()
    with pytest.raises(ConfigError, match="no such folder"):
        discover(tmp_path / "nowhere")


def test_queue_bounds_waiting_requests():
    from audiovae.ui.server import Busy, WorkQueue

    gate = threading.Event()
    order: list[int] = []

    def job(i: int) -> int:
        gate.wait(10)
        order.append(i)
        return i

    async def main() -> list:
        queue = WorkQueue(limit=2)
        first = asyncio.ensure_future(queue.run(job, 1))
        second = asyncio.ensure_future(queue.run(job, 2))
        await asyncio.sleep(0.05)
        with pytest.raises(Busy, match="busy"):
            await queue.run(job, 3)
        gate.set()
        done = await asyncio.gather(first, second)
        after = await queue.run(job, 4)  # room again once they finished
        queue.close()
        return [*done, after]

    assert asyncio.run(main()) == [1, 2, 4]
    assert order == [1, 2, 4]  # one at a time, in order


def test_ui_without_the_extra_says_which_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # an import of it now fails
    with pytest.raises(ConfigError, match=r"audiovae\[ui\]"):
        require_extra()


def test_ui_command_refuses_a_busy_port(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_cli("ui", "--port", port, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr


def test_ui_command_refuses_a_missing_models_folder(tmp_path):
    r = run_cli("ui", "--models", tmp_path / "nowhere", "--port", free_port(), timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "nowhere: no such folder" in r.stderr


def test_wav_bytes_keeps_channels_and_clips():
    from audiovae.audio import wav_bytes

    stereo = np.stack([sine(440, 0.5, SR), 1.5 * sine(220, 0.5, SR, amp=1.0)])
    data, sr = read(wav_bytes(stereo, SR))
    assert sr == SR and data.shape == (SR // 2, 2)
    np.testing.assert_allclose(data[:, 0], stereo[0], atol=1 / 32768)
    assert np.abs(data[:, 1]).max() <= 1.0 and np.abs(data[:, 1]).max() > 0.99  # clipped, not wrapped


@pytest.fixture
def client_for():
    """A TestClient over the real app, around any Studio (the client and the studio, with its scratch folder,
    closed at the end)."""
    from starlette.testclient import TestClient

    from audiovae.ui.server import create_app

    opened: list[tuple[TestClient, Studio]] = []

    def make(studio: Studio, **kwargs) -> TestClient:
        c = TestClient(create_app(studio, **kwargs), base_url="http://127.0.0.1:7860", raise_server_exceptions=False)
        opened.append((c.__enter__(), studio))
        return c

    yield make
    for c, studio in opened:
        c.__exit__(None, None, None)
        studio.close()
        assert not studio.scratch.exists()


def test_endpoints_answer_in_one_readable_line(client_for, example_path):
    class Broken(Studio):
        def denoise(self, *args, **kwargs):
            raise RuntimeError("something inside broke")

    studio = Broken(limits=Limits(max_upload_mb=1.0), device="cpu")
    c = client_for(studio)
    ex = ("example.wav", example_path.read_bytes(), "audio/wav")
    r = c.post("/api/convert", files={"file": ex}, data={"speaker": "B"})
    assert r.status_code == 200
    body = r.json()
    assert body["clips"][0]["seconds"] == pytest.approx(5.0, abs=0.01)
    wav = c.get(body["clips"][0]["url"])
    assert wav.headers["content-type"] == "audio/wav" and read(wav.content)[0].size == sf.info(example_path).frames
    assert c.get(body["images"]["spectrogram"]).content.startswith(b"\x89PNG")

    r = c.post("/api/denoise", files={"file": ex})
    assert r.status_code == 500 and "\n" not in r.json()["error"]
    assert r.json()["error"].startswith("internal error (RuntimeError: something inside broke)")
    r = c.post("/api/convert", data={"speaker": "B"})
    assert r.status_code == 400 and r.json()["error"] == "choose or record a clip to convert first"
    r = c.post("/api/convert", files=[("file", ex)] + [("reference", ex)] * 8, data={"speaker": "B"})
    assert r.status_code == 400 and r.json()["error"].startswith("the request was refused: Too many files")
    r = c.post("/api/convert", files=[("file", ex)] + [("reference", ex)] * 4)
    assert r.status_code == 400 and r.json()["error"] == "give at most 3 reference recordings (got 4)"
    whole = c.get(body["clips"][0]["url"]).content
    part = c.get(body["clips"][0]["url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    assert c.get(body["clips"][0]["url"], headers={"Range": "bytes=-10"}).content == whole[-10:]
    r = c.post("/api/music", data={"seconds": "ten"})
    assert r.status_code == 400 and r.json()["error"] == "seconds 'ten': not a number"
    r = c.post("/api/convert", files={"file": ("big.wav", b"\0" * 5_100_000, "audio/wav")}, data={"speaker": "B"})
    assert r.status_code == 413 and "over the 5 MB limit of one request" in r.json()["error"]

    def chunks():  # the same body in pieces, with no Content-Length: counted as it arrives
        boundary = b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n\r\n"
        yield boundary
        for _ in range(60):
            yield b"\0" * 100_000

    r = c.post("/api/convert", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and r.json()["error"] == "the upload is over the 5 MB limit of one request"
    r = c.get("/files/0123/x.wav")
    assert r.status_code == 404 and "expired" in r.json()["error"]
    assert c.get("/api/models/music/curve.png").status_code == 404
    page = c.get("/")
    assert page.status_code == 200 and 'id="panel-convert"' in page.text
    assert c.get("/static/app.js").status_code == 200
    assert list(studio.scratch.iterdir()) == []


def test_a_full_queue_is_told_busy(client_for):
    studio = Studio(device="cpu")
    c = client_for(studio, max_queue=1)
    started, release = threading.Event(), threading.Event()
    original = studio.music

    def slow(**kwargs):
        started.set()
        release.wait(30)
        return original(**kwargs)

    studio.music = slow
    answers: list = []
    first = threading.Thread(target=lambda: answers.append(c.post("/api/music", data={"seconds": "1", "count": "1"})))
    first.start()
    assert started.wait(30)
    r = c.post("/api/music", data={"seconds": "1"})
    assert r.status_code == 503 and "busy" in r.json()["error"]
    models = c.get("/api/models")  # the page still loads while the queue is full
    assert models.status_code == 200 and [m["name"] for m in models.json()["models"]][:3] == [
        "voice_conversion", "denoise", "music"]
    release.set()
    first.join(60)
    assert answers[0].status_code == 200 and len(answers[0].json()["clips"]) == 1


def test_only_this_computer_and_this_page_may_use_it(client_for):
    studio = Studio(device="cpu")
    local = client_for(studio)
    ok = local.get("/api/models")
    assert ok.status_code == 200
    for host in ("evil.example", "evil.example:7860", "10.1.2.3:7860"):
        r = local.get("/api/models", headers={"Host": host})
        assert r.status_code == 403 and "this computer only" in r.json()["error"]
    for host in ("localhost:7860", "127.0.0.2:7860", "[::1]:7860", "[0:0:0:0:0:0:0:1]:7860"):
        assert local.get("/api/models", headers={"Host": host}).status_code == 200, host
    for origin in ("http://evil.example", "null", "http://127.0.0.1:9999"):
        r = local.post("/api/music", data={"seconds": "1"}, headers={"Origin": origin})
        assert r.status_code == 403 and "only this page" in r.json()["error"], origin
    same = local.post("/api/music", data={"seconds": "0.5"}, headers={"Origin": "http://127.0.0.1:7860"})
    assert same.status_code == 200
    shared = client_for(Studio(device="cpu"), loopback=False)  # --host 0.0.0.0: reached by the machine's address
    assert shared.get("/api/models", headers={"Host": "192.168.1.20:7860"}).status_code == 200
    r = shared.post("/api/music", data={"seconds": "0.5"}, headers={"Host": "192.168.1.20:7860",
                                                                    "Origin": "http://192.168.1.20:7860"})
    assert r.status_code == 200


def test_loopback_and_ranges_and_the_result_store():
    from audiovae.ui.server import ResultStore, _byte_range, _host_name, is_loopback

    assert [is_loopback(h) for h in ("127.0.0.1", "127.9.9.9", "::1", "0:0:0:0:0:0:0:1", "localhost")] == [True] * 5
    assert [is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "::", "example.org")] == [False] * 4
    assert [_host_name(h) for h in ("a.org:80", "[::1]:7860", "[::1]", "127.0.0.1")] == ["a.org", "::1", "::1",
                                                                                          "127.0.0.1"]
    assert _byte_range("bytes=0-9", 100) == (0, 9) and _byte_range("bytes=90-", 100) == (90, 99)
    assert _byte_range("bytes=-5", 100) == (95, 99) and _byte_range("bytes=50-500", 100) == (50, 99)
    assert _byte_range("bytes=0-1,5-6", 100) is None and _byte_range("pages=1", 100) is None
    assert _byte_range("bytes=200-", 100) is None and _byte_range(None, 100) is None
    store = ResultStore(keep=3, max_bytes=250)
    keys = [store.add({"x.wav": (b"\0" * 100, "audio/wav")}) for _ in range(3)]
    assert store.get(keys[0], "x.wav") is None  # 300 bytes: the oldest went
    assert store.get(keys[1], "x.wav") is not None and store.get(keys[2], "x.wav") is not None
    big = store.add({"y.wav": (b"\0" * 1000, "audio/wav")})
    assert store.get(big, "y.wav") is not None and store.get(keys[2], "x.wav") is None  # the newest always stays


def test_jobs_report_progress_and_are_cancelled(client_for):
    """A named job: polled while it waits and runs, cancelled running and cancelled waiting (the second never
    reaches the studio), each request answering 409; ids checked; a client gone cancels its job."""
    from audiovae.ui.server import _cancel_when_gone

    studio = Studio(device="cpu")
    c = client_for(studio)
    started, release = threading.Event(), threading.Event()
    original, calls = studio.music, []

    def slow(progress, **kwargs):
        calls.append(progress)
        progress.stage("holding")
        started.set()
        release.wait(30)
        return original(progress=progress, **kwargs)

    studio.music = slow
    answers: dict = {}

    def post(job: str) -> threading.Thread:
        t = threading.Thread(target=lambda: answers.setdefault(job, c.post(f"/api/music?job={job}",
                                                                           data={"seconds": "0.5"})))
        t.start()
        return t

    first = post("first-job")
    assert started.wait(30)
    second = post("second-job")
    for _ in range(100):
        if c.get("/api/jobs/second-job").status_code == 200:
            break
        threading.Event().wait(0.05)
    state = c.get("/api/jobs/first-job").json()
    assert state["state"] == "running" and state["stage"] == "holding" and state["elapsed_s"] >= 0
    threading.Event().wait(0.05)  # the clock runs while the job does (to 10 ms: it may read 0.0 at first)
    assert c.get("/api/jobs/first-job").json()["elapsed_s"] >= state["elapsed_s"] + 0.04
    assert c.get("/api/jobs/second-job").json()["state"] == "queued"
    assert c.post("/api/jobs/second-job/cancel").status_code == 200
    assert c.post("/api/jobs/first-job/cancel").json()["state"] == "running"  # until its next check
    release.set()
    first.join(60)
    second.join(60)
    assert answers["first-job"].status_code == 409
    assert answers["first-job"].json()["error"] == "cancelled while holding"
    assert answers["second-job"].status_code == 409 and len(calls) == 1  # it never started
    for job in ("first-job", "second-job"):
        state = c.get(f"/api/jobs/{job}").json()
        assert state["state"] == "cancelled" and state["error"].startswith("cancelled while")

    studio.music = original
    r = c.post("/api/music?job=third-job", data={"seconds": "0.5"})
    assert r.status_code == 200 and c.get("/api/jobs/third-job").json()["state"] == "done"
    assert c.post("/api/jobs/third-job/cancel").json()["state"] == "done"  # ended: left as it ended
    r = c.post("/api/music?job=third-job", data={"seconds": "0.5"})
    assert r.status_code == 400 and r.json()["error"] == "job id 'third-job' is already in use"
    r = c.post("/api/music?job=x y", data={"seconds": "0.5"})
    assert r.status_code == 400 and r.json()["error"] == "job id 'x y': give 8 to 64 letters, digits, - or _"
    assert c.get("/api/jobs/nosuchjob").status_code == c.post("/api/jobs/nosuchjob/cancel").status_code == 404
    assert c.get("/api/examples/example.wav").headers["content-type"] == "audio/wav"
    assert c.get("/api/examples/x.wav").status_code == 404

    messages = iter([{"type": "http.request", "body": b""}, {"type": "http.disconnect"}])

    async def receive() -> dict:
        return next(messages)

    gone = Progress()
    asyncio.run(_cancel_when_gone(receive, gone))
    assert gone.cancelled

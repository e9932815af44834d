"""The web page in a real browser: `audiovae ui` started as users start it, Debian's Chromium driven by Playwright.

Each tab: upload a clip (or record one from Chromium's fake microphone), set the controls, click, wait for the
output audio, fetch it and check that it is valid audio of the expected length. Bad uploads show their error on the
page. A screenshot of each tab is saved (to $AUDIOVAE_UI_SCREENSHOTS when set; README's picture comes from there).
In CI (CI=true) a missing browser or Playwright is a failure, not a skip.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, free_port, sine, training_run

CHROMIUM = "/usr/bin/chromium"


def _require() -> None:
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "playwright is not installed (the dev extra)"
    if problem is None and not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium; .ci/setup does)"
    if problem is None:
        try:
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            problem = "the ui extra is not installed"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)


_require()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    out = Path(os.environ.get("AUDIOVAE_UI_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`audiovae ui` on a free loopback port, with a models folder holding a training run (checkpoint + log.csv),
    its temporary files under a folder of its own (checked empty at the end)."""
    root = tmp_path_factory.mktemp("ui")
    training_run(root / "models" / "my_music_run")
    tmp = root / "tmp"
    tmp.mkdir()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "audiovae", "ui", "--port", str(port), "--models",
                             str(root / "models"), "--max-seconds", "20", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, TMPDIR=str(tmp)))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"audiovae ui exited ({proc.returncode}): {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url + "/api/models", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("audiovae ui did not answer within 120 s")
        time.sleep(0.3)
    yield url, tmp
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("audiovae ui did not stop on Ctrl-C")
    assert "Traceback" not in err, err
    assert list(tmp.iterdir()) == [], "the server left temporary files behind"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    url, _ = server
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.goto(url + "/")
    p.wait_for_selector("body[data-ready=true]", timeout=30_000)
    yield p
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def wav(path: Path, wave: np.ndarray, sr: int = SR) -> Path:
    sf.write(path, wave, sr)
    return path


def fetch_clips(page, panel: str) -> list[tuple[np.ndarray, int]]:
    """Every output clip of a tab, fetched from its <audio> element's address and decoded."""
    clips = []
    for audio in page.locator(f"#{panel} figure.clip audio").all():
        response = page.request.get(audio.evaluate("a => a.src"))  # the absolute address
        assert response.ok and response.headers["content-type"] == "audio/wav"
        data, sr = sf.read(io.BytesIO(response.body()), dtype="float32")
        assert np.isfinite(data).all() and np.abs(data).max() > 1e-3
        clips.append((data, sr))
    return clips


def run_tab(page, panel: str, timeout: float = 120_000) -> None:
    page.click(f"#{panel} button.run")
    page.wait_for_selector(f"#{panel} .status:has-text('Done')", timeout=timeout)


def test_convert_tab(page, example_path, shots):
    page.set_input_files("#convert-file", str(example_path))
    assert page.locator("#convert-speaker option").count() == 8
    page.select_option("#convert-speaker", "B")
    page.select_option("#convert-pitch", "model")
    page.select_option("#convert-vocoder", "griffin-lim")
    run_tab(page, "panel-convert")
    ((wave, sr),) = fetch_clips(page, "panel-convert")
    assert sr == 22050 and wave.shape == (sf.info(example_path).frames,)
    assert page.locator("#panel-convert img.spectrogram").evaluate("img => img.complete && img.naturalWidth > 0")
    assert page.locator("#panel-convert a.download").get_attribute("download") == "example_B.wav"
    page.screenshot(path=str(shots / "ui_convert.png"), full_page=True)


def test_convert_bad_uploads_show_errors(page, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is a text file, not audio\n")
    page.set_input_files("#convert-file", str(bad))
    page.click("#panel-convert button.run")
    alert = page.locator("#panel-convert .error")
    alert.wait_for(state="visible", timeout=30_000)
    assert "notes.wav: not a readable audio file" in alert.inner_text()
    assert page.locator("#panel-convert figure.clip").count() == 0
    long = wav(tmp_path / "long.wav", sine(220, 21.0, 8000), 8000)
    page.set_input_files("#convert-file", str(long))
    page.click("#panel-convert button.run")
    page.wait_for_selector("#panel-convert .error:has-text('over the 20 s limit')", timeout=30_000)
    assert "Traceback" not in page.content()


def test_convert_a_recording_from_the_microphone(page):
    page.click("#panel-convert button.record")
    page.wait_for_selector("#panel-convert button.record:has-text('Stop')")
    page.wait_for_timeout(1500)
    page.click("#panel-convert button.record")
    page.wait_for_selector("#panel-convert audio.preview:not([hidden])")
    assert page.locator("#convert-file").evaluate("i => i.files[0].name") == "recording.wav"
    page.select_option("#convert-speaker", "G")
    run_tab(page, "panel-convert")
    ((wave, sr),) = fetch_clips(page, "panel-convert")
    assert sr == 22050 and 1.0 < wave.size / sr < 4.0  # about the 1.5 s recorded


def test_denoise_tab(page, tmp_path, shots, speech):
    rng = np.random.default_rng(1)
    clip = np.resize(speech, 3 * SR)
    noisy = np.stack([clip, clip]) + 0.03 * rng.standard_normal((2, clip.size))
    noisy16 = np.stack([np.interp(np.arange(0, clip.size, SR / 16000), np.arange(clip.size), c) for c in noisy])
    path = wav(tmp_path / "noisy.wav", noisy16.T.astype(np.float32), 16000)
    page.click("#tab-denoise")
    page.set_input_files("#denoise-file", str(path))
    page.locator("#denoise-strength").evaluate("s => { s.value = '0.7'; s.dispatchEvent(new Event('input')); }")
    assert page.inner_text('output[for="denoise-strength"]') == "0.7"
    run_tab(page, "panel-denoise")
    ((wave, sr),) = fetch_clips(page, "panel-denoise")
    assert sr == 16000 and wave.shape == (sf.info(path).frames, 2)  # the input's rate, channels and length
    assert page.locator("#panel-denoise audio.preview").is_visible()  # before ...
    assert page.locator("#panel-denoise img.spectrogram").evaluate("img => img.complete && img.naturalWidth > 0")
    page.screenshot(path=str(shots / "ui_denoise.png"), full_page=True)


def test_music_tab(page, shots, example_path):
    page.click("#tab-music")
    page.fill("#music-seed", "3")
    page.fill("#music-seconds", "2")
    page.fill("#music-temperature", "0.9")
    page.fill("#music-count", "2")
    run_tab(page, "panel-music")
    clips = fetch_clips(page, "panel-music")
    assert len(clips) == 2 and all(sr == 22050 and abs(w.size - 2 * sr) <= 256 for w, sr in clips)
    assert page.locator("#panel-music a.download").first.get_attribute("download") == "sample_003.wav"
    page.screenshot(path=str(shots / "ui_music.png"), full_page=True)

    page.check('#music-form input[value="walk"]')
    assert page.locator("#music-count").is_hidden()
    page.fill("#music-seconds", "3")
    run_tab(page, "panel-music")
    ((walk, sr),) = fetch_clips(page, "panel-music")
    assert abs(walk.size - 3 * sr) <= 256

    page.check('#music-form input[value="interpolate"]')
    page.set_input_files("#music-a", str(example_path))
    page.set_input_files("#music-b", str(example_path))
    page.fill("#music-steps", "3")
    run_tab(page, "panel-music")
    ((path, sr),) = fetch_clips(page, "panel-music")
    assert abs(path.size / sr - (3 * 5.0 + 2 * 0.3)) < 0.05


def test_models_tab(page, shots):
    page.click("#tab-models")
    cards = page.locator("#model-list article.model")
    names = [c.get_attribute("data-model") for c in cards.all()]
    assert names == ["voice_conversion", "denoise", "music", "my_music_run"]
    vc = page.locator('article[data-model="voice_conversion"]')
    assert vc.locator("table.speakers tr").count() == 9  # a header and A-H
    assert "cvae" in vc.inner_text()
    curve = page.locator('article[data-model="my_music_run"] img.curve')
    curve.wait_for()
    page.wait_for_function("() => document.querySelector('img.curve').naturalWidth > 0")
    page.screenshot(path=str(shots / "ui_models.png"), full_page=True)


def test_other_sites_are_refused(server, example_path):
    url, _ = server

    def status(req: urllib.request.Request) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    assert status(urllib.request.Request(url + "/api/models"))[0] == 200
    code, body = status(urllib.request.Request(url + "/api/models", headers={"Host": "evil.example:80"}))
    assert code == 403 and "this computer only" in body  # DNS rebinding
    code, body = status(urllib.request.Request(url + "/api/music", data=b"", method="POST",
                                               headers={"Origin": "http://evil.example"}))
    assert code == 403 and "only this page" in body  # another site's page posting here


def test_a_tab_without_a_model_says_so(browser, server):
    url, _ = server
    context = browser.new_context()
    p = context.new_page()

    def without_music(route) -> None:  # the same server's answer, minus its music models
        import json

        response = route.fetch()
        body = response.json()
        body["models"] = [m for m in body["models"] if m["task"] != "music"]
        route.fulfill(response=response, body=json.dumps(body))

    p.route("**/api/models", without_music)
    p.goto(url + "/")
    p.wait_for_selector("body[data-ready=true]")
    assert p.locator("#panel-music button.run").is_disabled()
    assert "No music model is available" in p.locator("#panel-music .error").inner_text()
    assert p.locator("#panel-convert button.run").is_enabled()
    context.close()

"""The web page in a real browser: `audiovae ui` started as users start it, Debian's Chromium driven by Playwright.

Each tab: load its example (or upload, drop or record a clip from Chromium's fake microphone), set the controls,
click, wait for the output audio, fetch it and check that it is valid audio of the expected length. A long job (the
one-shot voice fit) shows its stage, steps and elapsed time, and its Cancel stops it on the server. Bad uploads show
their error on the page. A screenshot of each tab is saved (to $AUDIOVAE_UI_SCREENSHOTS when set; README's picture
comes from there).
In CI (CI=true) a missing browser or Playwright is a failure, not a skip.
"""

from __future__ import annotations

import base64
import io
import os
import re
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
    left = [f for f in tmp.iterdir() if not f.name.startswith("torchinductor_")]  # torch's cache (an Adam step)
    assert left == [], "the server left temporary files behind"


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


def drop(page, zone: str, *files: tuple[str, bytes, str]) -> None:
    """Files (name, bytes, MIME type) dropped on ``zone`` as from the desktop: a synthetic drag and drop."""
    page.locator(zone).evaluate("""(zone, files) => {
        const transfer = new DataTransfer();
        for (const [name, b64, type] of files) {
            transfer.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, { type }));
        }
        for (const type of ["dragenter", "dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }
    }""", [[name, base64.b64encode(data).decode(), mime] for name, data, mime in files])


def wav_bytes(wave: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def file_name(page, input_id: str) -> str | None:
    return page.locator(f"#{input_id}").evaluate("i => i.files.length ? i.files[0].name : null")


def test_convert_tab(page, shots):
    page.click('#panel-convert button.example[data-for="convert-file"]')  # the bundled example clip
    page.wait_for_selector('#panel-convert audio.preview[data-for="convert-file"]:not([hidden])')
    assert file_name(page, "convert-file") == "example.wav"
    assert page.locator("#convert-speaker option").count() == 8
    page.select_option("#convert-speaker", "B")
    page.select_option("#convert-pitch", "model")
    page.select_option("#convert-vocoder", "griffin-lim")
    run_tab(page, "panel-convert")
    ((wave, sr),) = fetch_clips(page, "panel-convert")
    assert sr == 22050 and wave.shape == (110255,)  # the example's 5 s
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
    # dropped files the page itself refuses, in one line, keeping the input as it was
    zone = '#panel-convert .drop[data-for="convert-file"]'
    drop(page, zone, ("notes.txt", b"text\n", "text/plain"))
    assert alert.inner_text() == ("notes.txt: not an audio file (text/plain); drop a recording (WAV, FLAC, MP3, OGG, "
                                  "...).")
    drop(page, zone, ("a.wav", long.read_bytes(), "audio/wav"), ("b.wav", long.read_bytes(), "audio/wav"))
    assert alert.inner_text() == "Drop one file here (2 were dropped)."
    assert file_name(page, "convert-file") == "long.wav"


def test_convert_a_recording_from_the_microphone(page):
    record = '#panel-convert button.record[data-for="convert-file"]'
    page.click(record)
    page.wait_for_selector(f"{record}:has-text('Stop')")
    page.wait_for_timeout(1500)
    page.click(record)
    page.wait_for_selector('#panel-convert audio.preview[data-for="convert-file"]:not([hidden])')
    assert page.locator("#convert-file").evaluate("i => i.files[0].name") == "recording.wav"
    page.select_option("#convert-speaker", "G")
    run_tab(page, "panel-convert")
    ((wave, sr),) = fetch_clips(page, "panel-convert")
    assert sr == 22050 and 1.0 < wave.size / sr < 4.0  # about the 1.5 s recorded


def test_denoise_tab(page, tmp_path, shots, speech):
    page.click("#tab-denoise")
    page.click("#panel-denoise button.example")  # the example in noise, made by the server
    page.wait_for_selector("#panel-denoise audio.preview:not([hidden])")
    assert file_name(page, "denoise-file") == "example_noisy.wav"
    run_tab(page, "panel-denoise")
    ((wave, sr),) = fetch_clips(page, "panel-denoise")
    assert sr == 22050 and wave.shape == (110255,)
    assert page.locator("#panel-denoise a.download").get_attribute("download") == "example_noisy_denoised.wav"

    rng = np.random.default_rng(1)
    clip = np.resize(speech, 3 * SR)
    noisy = np.stack([clip, clip]) + 0.03 * rng.standard_normal((2, clip.size))
    noisy16 = np.stack([np.interp(np.arange(0, clip.size, SR / 16000), np.arange(clip.size), c) for c in noisy])
    path = wav(tmp_path / "noisy.wav", noisy16.T.astype(np.float32), 16000)
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
    page.check('#music-form input[value="walk"]')
    page.fill("#music-seed", "3")
    page.click("#music-example")  # no input file here: example settings
    assert page.is_checked('#music-form input[value="sample"]') and page.locator("#music-count").is_visible()
    assert [page.input_value(f"#music-{k}") for k in ("seed", "seconds", "temperature", "count")] == [
        "7", "4", "0.9", "2"]
    run_tab(page, "panel-music")
    clips = fetch_clips(page, "panel-music")
    assert len(clips) == 2 and all(sr == 22050 and abs(w.size - 4 * sr) <= 256 for w, sr in clips)
    assert page.locator("#panel-music a.download").first.get_attribute("download") == "sample_007.wav"
    page.screenshot(path=str(shots / "ui_music.png"), full_page=True)

    page.check('#music-form input[value="walk"]')
    assert page.locator("#music-count").is_hidden()
    page.fill("#music-seconds", "3")
    run_tab(page, "panel-music")
    ((walk, sr),) = fetch_clips(page, "panel-music")
    assert abs(walk.size - 3 * sr) <= 256

    page.check('#music-form input[value="interpolate"]')
    page.set_input_files("#music-a", str(example_path))
    drop(page, '.drop[data-for="music-b"]', ("dropped.wav", example_path.read_bytes(), "audio/wav"))
    assert file_name(page, "music-b") == "dropped.wav"
    page.fill("#music-steps", "3")
    run_tab(page, "panel-music")
    ((path, sr),) = fetch_clips(page, "panel-music")
    assert abs(path.size / sr - (3 * 5.0 + 2 * 0.3)) < 0.05


def test_reference_from_the_microphone_progress_and_cancel(page, server):
    """A dropped source, a reference voice recorded from the fake microphone, the one-shot fit's progress (stage,
    steps, elapsed seconds), Cancel (the job stops on the server), then the page works on with a table voice."""
    url, _ = server
    drop(page, '#panel-convert .drop[data-for="convert-file"]',
         ("dropped.wav", wav_bytes(sine(220, 2.0, 8000), 8000), "audio/wav"))
    page.wait_for_selector('#panel-convert audio.preview[data-for="convert-file"]:not([hidden])')
    assert file_name(page, "convert-file") == "dropped.wav"

    record = page.locator('#panel-convert button.record[data-for="convert-reference"]')
    record.click()
    page.wait_for_selector('#panel-convert button.record[data-for="convert-reference"]:has-text("Stop")')
    page.wait_for_timeout(3600)  # the fit needs 3 s
    record.click()
    page.wait_for_selector('#panel-convert audio.preview[data-for="convert-reference"]:not([hidden])')
    assert file_name(page, "convert-reference") == "reference.wav"
    assert page.locator("#convert-speaker").is_disabled()

    page.click("#panel-convert button.run")  # the fit runs only when a reference arrives: the recording did
    stage = page.locator("#panel-convert .progress .stage")
    page.wait_for_function(r"""() => /^Fitting the reference voice: step ([2-9]|\d\d+) of 350$/.test(
        document.querySelector('#panel-convert .progress .stage').textContent)""", timeout=60_000)
    elapsed = page.locator("#panel-convert .progress .elapsed")
    first = float(re.fullmatch(r"(\d+\.\d) s", elapsed.inner_text())[1])
    assert first >= 1.0 and page.locator("#panel-convert .progress").is_visible()
    page.wait_for_function(f"() => parseFloat(document.querySelector('#panel-convert .progress .elapsed')"
                           f".textContent) > {first + 0.3}")  # the clock runs
    assert stage.inner_text().startswith("Fitting")
    page.click("#panel-convert .progress button.cancel")
    page.wait_for_selector("#panel-convert .status:has-text('Cancelled after')", timeout=30_000)
    assert "Server: cancelled while fitting the reference voice (step " in page.inner_text("#panel-convert .status")
    assert page.locator("#panel-convert .progress").is_hidden() and page.locator("#panel-convert .error").is_hidden()
    assert page.locator("#panel-convert figure.clip").count() == 0

    job = page.locator("#panel-convert").get_attribute("data-job")  # the server's side: stopped, and stays stopped
    state = page.request.get(f"{url}/api/jobs/{job}").json()
    assert state["state"] == "cancelled" and state["stage"] == "fitting the reference voice"
    assert 2 <= state["step"] < state["total"] == 350
    page.wait_for_timeout(1000)
    assert page.request.get(f"{url}/api/jobs/{job}").json()["step"] == state["step"]

    page.click('#panel-convert button.clear[data-for="convert-reference"]')  # back to the table's voices
    assert file_name(page, "convert-reference") is None and page.locator("#convert-speaker").is_enabled()
    page.select_option("#convert-speaker", "C")
    run_tab(page, "panel-convert")
    ((wave, sr),) = fetch_clips(page, "panel-convert")
    assert sr == 22050 and wave.size == 2 * sr
    assert page.locator("#panel-convert a.download").get_attribute("download") == "dropped_C.wav"


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

"""A conversion through the web page against the same conversion with the CLI, for the same file.

Run: ``python bench/ui.py [--seconds 5 30] [--repeat 3]`` (needs the ui and dev extras and /usr/bin/chromium).

For each clip length it measures, best of ``--repeat``:
- **CLI**: ``audiovae convert FILE --speaker B -o OUT`` as a user runs it (a fresh process: start, load, convert, save);
- **page**: in a running ``audiovae ui``, Chromium (Playwright) chooses the file, clicks Convert and waits until the
  converted audio and the spectrogram are loaded, as a user sees it;
- **HTTP**: the page's request alone (``POST /api/convert``, then fetching the WAV), without the browser;
- **pipeline** and **studio**, in this process: the conversion the CLI runs (load, convert, encode the WAV) and the
  page's whole work (the same plus the before/after spectrogram), so the UI layer's own cost is visible.
Prints each time and the ratio page / CLI (the web page's acceptance bar is 1.5).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, header  # noqa: E402

from audiovae import api, audio  # noqa: E402
from audiovae.ui.studio import Studio, Upload  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def clip(seconds: float, out: Path) -> Path:
    """The bundled example, repeated to ``seconds``."""
    example = Path(api.__file__).parent / "assets" / "example.wav"
    wave, sr = sf.read(example, dtype="float32")
    sf.write(out, np.resize(wave, round(seconds * sr)), sr)
    return out


def post(url: str, path: Path) -> None:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"speaker\"\r\n\r\nB\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "/api/convert", body,
                                 {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=300) as r:
        result = json.loads(r.read())
    for c in result["clips"]:
        urllib.request.urlopen(url + c["url"], timeout=60).read()


def start_server(tmp: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "audiovae", "ui", "--port", str(port), "--max-seconds", "600",
                             "--max-upload-mb", "200"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, TMPDIR=str(tmp)))
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/api/models", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.2)
    raise SystemExit("audiovae ui did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, nargs="+", default=[5.0, 30.0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    header("voice conversion: web page vs CLI, speaker B, bundled model")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        proc, url = start_server(tmp)
        studio = Studio(device="cpu")
        vc = api.load("voice_conversion", "cpu")
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync"])
                page = browser.new_page()
                page.goto(url + "/")
                page.wait_for_selector("body[data-ready=true]")

                def through_page(path: Path) -> None:
                    page.set_input_files("#convert-file", str(path))
                    page.select_option("#convert-speaker", "B")
                    page.click("#panel-convert button.run")
                    page.wait_for_selector("#panel-convert .status:has-text('Done')", timeout=300_000)
                    page.wait_for_function(
                        "() => { const a = document.querySelector('#panel-convert figure.clip audio');"
                        " const i = document.querySelector('#panel-convert img.spectrogram');"
                        " return a && a.readyState >= 1 && i && i.complete && i.naturalWidth > 0; }")

                print(f"{'clip':>6}  {'CLI':>7}  {'page':>7}  {'HTTP':>7}  {'pipeline':>8}  {'studio':>7}  page/CLI")
                for seconds in args.seconds:
                    path = clip(seconds, tmp / f"clip_{seconds:g}s.wav")
                    cli = [sys.executable, "-m", "audiovae", "convert", str(path), "--speaker", "B", "-o",
                           str(tmp / "out.wav")]
                    upload = Upload(path.name, path.read_bytes())
                    work = {
                        "CLI": lambda c=cli: subprocess.run(c, check=True, capture_output=True),
                        "page": lambda p=path: through_page(p),
                        "HTTP": lambda p=path: post(url, p),
                        "pipeline": lambda p=path: audio.wav_bytes(vc.convert(str(p), "B")[0], vc.sample_rate),
                        "studio": lambda u=upload: studio.convert(u, speaker="B"),
                    }
                    t = {name: best_of(fn, args.repeat) for name, fn in work.items()}
                    print(f"{seconds:5.0f}s  {t['CLI']:6.2f}s  {t['page']:6.2f}s  {t['HTTP']:6.2f}s  "
                          f"{t['pipeline']:7.2f}s  {t['studio']:6.2f}s  {t['page'] / t['CLI']:.2f}x")
                browser.close()
        finally:
            studio.close()
            proc.send_signal(signal.SIGINT)
            proc.wait(30)


if __name__ == "__main__":
    main()

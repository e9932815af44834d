"""The bad-input matrix: every command that reads audio or a checkpoint, given every kind of file users have, gives
a correct output or a one-line error (exit code != 0): never a traceback, never a partial output file, never an
overwritten input. The commands run in this process through the real entry point (`cli.main`, which is what
`audiovae` and `python -m audiovae` call), so the matrix costs no process start per case."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, chirp

from audiovae.pretrained import bundled_path


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    crash: BaseException | None = None


def cli(*args: str | os.PathLike) -> Run:
    """``audiovae ARGS`` in this process: exit code, stdout, stderr, and the exception if one escaped ``main``."""
    from audiovae import cli as entry

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["audiovae", *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("default")
            try:
                entry.main()
            except SystemExit as e:
                return Run(e.code if isinstance(e.code, int) else 1, out.getvalue(), err.getvalue())
            except BaseException as e:  # noqa: BLE001 - a traceback is exactly what the matrix looks for
                return Run(-1, out.getvalue(), err.getvalue(), e)
    finally:
        sys.argv = argv
    return Run(0, out.getvalue(), err.getvalue())


# ------------------------------------------------------------------------------------------------------ the inputs
OK, ERROR = "ok", "error"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, tuple[Path, str, str]]:
    """name -> (file, expected outcome, what stderr must say). Valid clips are 1.5 s of a sweep."""
    d = tmp_path_factory.mktemp("inputs")
    y = chirp(1.5)
    cases: dict[str, tuple[Path, str, str]] = {}

    def audio(name: str, data: np.ndarray, rate: int = SR, subtype: str | None = None, outcome: str = OK,
              says: str = "") -> None:
        sf.write(d / name, data, rate, subtype)
        cases[name] = (d / name, outcome, says)

    audio("pcm_u8.wav", y, subtype="PCM_U8")
    audio("pcm_24.flac", y, subtype="PCM_24")
    audio("float32.wav", y, subtype="FLOAT")
    audio("stereo.wav", np.stack([y, 0.5 * y], axis=1))
    audio("six_channels.wav", 0.3 * np.stack([y] * 6, axis=1))
    audio("rate_8k.wav", chirp(1.5, sr=8000, fmax=3500), 8000)
    audio("rate_96k.wav", chirp(1.5, sr=96000), 96000, "PCM_24")
    audio("silence.wav", np.zeros(int(1.5 * SR), np.float32), says="input is silent")
    audio("clipped.wav", np.clip(3 * y, -1, 1), says="input is clipped")
    audio("tiny.wav", chirp(0.01), outcome=ERROR, says="too short")
    bad = y.copy()
    bad[100] = np.nan
    audio("nan.wav", bad, subtype="FLOAT", outcome=ERROR, says="NaN or Inf")
    bad[100] = np.inf
    audio("inf.wav", bad, subtype="FLOAT", outcome=ERROR, says="NaN or Inf")
    # a WAV cut short (an interrupted copy): libsndfile reads what is there; we do too, and say so
    sf.write(d / "whole.wav", y, SR)
    whole = (d / "whole.wav").read_bytes()
    (d / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    cases["truncated.wav"] = (d / "truncated.wav", OK, "truncated")
    sf.write(d / "whole.flac", y, SR)
    flac = (d / "whole.flac").read_bytes()
    (d / "truncated.flac").write_bytes(flac[: len(flac) // 3])
    cases["truncated.flac"] = (d / "truncated.flac", ERROR, "could not decode")
    (d / "text.wav").write_text("this is not audio\n" * 40)
    cases["text.wav"] = (d / "text.wav", ERROR, "not a readable audio file")
    (d / "zero.wav").write_bytes(b"")
    cases["zero.wav"] = (d / "zero.wav", ERROR, "empty file")
    (d / "folder.wav").mkdir()
    cases["folder.wav"] = (d / "folder.wav", ERROR, "folder")  # "is a directory" or "is a folder: ... --out-dir"
    cases["missing.wav"] = (d / "missing.wav", ERROR, "no such file")
    return cases


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> Path:
    """A small anomaly detector (an untrained VAE with a threshold), enough to exercise `anomaly score`."""
    from audiovae.checkpoint import Checkpoint, save_checkpoint
    from audiovae.features import MelConfig
    from audiovae.models import build_model

    torch.manual_seed(0)
    model = build_model("vae", {"channels": (32, 32), "latent_dim": 8, "blocks": 1}).eval()
    path = tmp_path_factory.mktemp("detector") / "detector.safetensors"
    return save_checkpoint(path, Checkpoint(model, MelConfig(), task="anomaly",
                                            info={"anomaly": {"threshold": 1.0, "pooling": "mean"}}))


def _wav(path: Path) -> str | None:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    if len(data) == 0 or not np.isfinite(data).all() or rate <= 0:
        return f"{path.name}: {len(data)} samples at {rate} Hz, finite: {np.isfinite(data).all()}"
    return None


def _png(path: Path) -> str | None:
    return None if path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" else f"{path.name}: not a PNG"


def _npz(path: Path) -> str | None:
    with np.load(path) as z:
        return None if "z0" in z.files and np.isfinite(z["z0"]).all() else f"{path.name}: no finite z0"


# command -> (argument builder (input, output folder), output file name, output check)
AUDIO_COMMANDS = {
    "info": (lambda src, o: ["info", src], None, None),
    "resynth": (lambda src, o: ["resynth", src, "-o", o / "out.wav", "--n-iter", "4"], "out.wav", _wav),
    "plot": (lambda src, o: ["plot", src, "-o", o / "out.png"], "out.png", _png),
    "reconstruct": (lambda src, o: ["reconstruct", src, "-o", o / "out.wav", "--speaker", "A"], "out.wav", _wav),
    "encode": (lambda src, o: ["encode", src, "-o", o / "out.npz", "--model", "music"], "out.npz", _npz),
    "convert": (lambda src, o: ["convert", src, "--speaker", "B", "-o", o / "out.wav"], "out.wav", _wav),
    "denoise": (lambda src, o: ["denoise", src, "-o", o / "out.wav"], "out.wav", _wav),
    "convert --stream": (lambda src, o: ["convert", src, "--speaker", "B", "--stream", "-o", o / "out.wav"],
                         "out.wav", _wav),
    "denoise --stream": (lambda src, o: ["denoise", src, "--stream", "-o", o / "out.wav"], "out.wav", _wav),
    "interpolate": (lambda src, o: ["interpolate", src, src, "-o", o / "out.wav", "--steps", "2", "--model",
                                    "music"], "out.wav", _wav),
    "traverse": (lambda src, o: ["traverse", src, "-o", o / "out.png", "--model", "music", "--dims", "1",
                                 "--steps", "2"], "out.png", _png),
    # valid clips are 1.5 s, under a voice's 3 s: the one-line error is the right answer for them too
    "voice": (lambda src, o: ["voice", src, "-o", o / "out.safetensors", "--steps", "2"], "out.safetensors", None),
    "anomaly score": (lambda src, o: ["anomaly", "score", src, "--model", DETECTOR[0], "--csv", o / "out.csv"],
                      "out.csv", None),
}
DETECTOR: list[Path] = []


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _check(name: str, run: Run, src: Path, outcome: str, says: str, out_dir: Path, out_name: str | None,
           check) -> list[str]:  # noqa: ANN001
    """The contract for one (command, input); returns what broke it."""
    problems = []
    if run.crash is not None:
        return [f"{name}: traceback: {type(run.crash).__name__}: {run.crash}"]
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("audiovae: error: ")]
    others = [ln for ln in lines if not ln.startswith(("audiovae: error: ", "audiovae: warning: "))]
    if others:
        problems.append(f"{name}: stray stderr {others[:2]}")
    if len(set(lines)) != len(lines):
        problems.append(f"{name}: a line said twice: {lines}")
    out = out_dir / out_name if out_name else None
    if run.code == 0:
        if outcome == ERROR and name != "voice":
            problems.append(f"{name}: exit 0 where an error ({says}) was due")
        if says and says not in run.stderr:
            problems.append(f"{name}: no '{says}' on stderr: {lines}")
        if out is not None and not out.is_file():
            problems.append(f"{name}: exit 0 but no {out.name}")
        elif out is not None and check is not None and (why := check(out)):
            problems.append(f"{name}: {why}")
    else:
        if outcome == OK:
            problems.append(f"{name}: exit {run.code} where an output was due: {lines}")
        if run.code not in (1, 2):  # 2: a usage error, found by the option parser (a folder where a file belongs)
            problems.append(f"{name}: exit {run.code}, not 1 or 2")
        if len(errors) != 1 or len(lines) - len([ln for ln in lines if "warning" in ln]) != 1:
            problems.append(f"{name}: exit {run.code} without exactly one error line: {lines}")
        elif str(src) not in errors[0] and src.name not in errors[0] and outcome == ERROR:
            problems.append(f"{name}: the error does not name the file: {errors[0]}")
        elif outcome == ERROR and says not in errors[0]:
            problems.append(f"{name}: expected '{says}' in: {errors[0]}")
        if out is not None and out.exists():
            problems.append(f"{name}: failed but left {out.name}")
    left = [p.name for p in out_dir.iterdir() if ".tmp-" in p.name]
    if left:
        problems.append(f"{name}: temporary files left: {left}")
    return problems


@pytest.mark.parametrize("command", list(AUDIO_COMMANDS))
def test_every_kind_of_input_gives_an_output_or_one_line(command, inputs, detector, tmp_path):
    DETECTOR[:] = [detector]
    build, out_name, check = AUDIO_COMMANDS[command]
    problems = []
    for name, (src, outcome, says) in inputs.items():
        before = _digest(src)
        out_dir = tmp_path / name.replace(".", "_")
        out_dir.mkdir()
        run = cli(*build(src, out_dir))
        if command == "voice" and outcome == OK:  # every valid clip here is too short for a voice
            outcome, says = ERROR, "at least 3 s"
        if command == "info" and (outcome == OK or name == "tiny.wav"):  # it describes; levels go to stdout
            outcome, says = OK, ""
        if command.startswith("denoise") and name == "tiny.wav":  # it works at the input's rate, on any length
            outcome, says = OK, ""
        problems += _check(name, run, src, outcome, says, out_dir, out_name, check)
        if _digest(src) != before:
            problems.append(f"{name}: the input changed")
    assert not problems, "\n".join(problems)


def test_outputs_that_cannot_be_written_fail_before_any_work(inputs, tmp_path):
    src = inputs["float32.wav"][0]
    copy = tmp_path / "in.wav"
    copy.write_bytes(src.read_bytes())
    digest = _digest(copy)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    # root may write in a mode-555 folder; /proc refuses new files to everyone
    unwritable = locked if os.geteuid() != 0 else Path("/proc")
    cases = {
        "a missing output folder": (tmp_path / "no" / "such" / "out.wav", "does not exist"),
        "a folder that refuses files": (unwritable / "out.wav", "writ"),
        "the input itself": (copy, "input"),
        "a folder in the way": (tmp_path, "is a directory"),
    }
    problems = []
    for command in ("resynth", "convert", "denoise", "plot", "encode"):
        for case, (out, says) in cases.items():
            if command == "plot":
                out = out.with_suffix(".png") if out.suffix == ".wav" else out
            if command == "encode":
                out = out.with_suffix(".npz") if out.suffix == ".wav" else out
            args = {"resynth": ["resynth", copy, "-o", out, "--n-iter", "2"],
                    "convert": ["convert", copy, "--speaker", "B", "-o", out],
                    "denoise": ["denoise", copy, "-o", out],
                    "plot": ["plot", copy, "-o", out],
                    "encode": ["encode", copy, "-o", out, "--model", "music"]}[command]
            if case == "the input itself" and command in ("plot", "encode"):
                continue  # a .png or .npz beside the input is not the input
            run = cli(*args)
            lines = run.stderr.strip().splitlines()
            if run.crash is not None or run.code == 0 or len(lines) != 1 or says not in lines[0]:
                problems.append(f"{command}, {case}: exit {run.code}, {run.crash!r}, {lines}")
    locked.chmod(0o755)
    assert _digest(copy) == digest
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Checkpoints that must be refused: name -> (file, what the error says)."""
    d = tmp_path_factory.mktemp("checkpoints")
    music = bundled_path("music").read_bytes()
    (d / "truncated.safetensors").write_bytes(music[: len(music) // 2])
    (d / "text.safetensors").write_text("not a checkpoint\n")
    marker = d / "code_ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": Payload()}, d / "payload.pt")
    (d / "payload.safetensors").write_bytes(pickle.dumps(Payload()))
    PAYLOAD_MARKER[:] = [marker]
    return {"truncated.safetensors": (d / "truncated.safetensors", "truncated or not a .safetensors file"),
            "text.safetensors": (d / "text.safetensors", "not a readable checkpoint"),
            "payload.pt": (d / "payload.pt", "refusing to load a pickle that needs code execution"),
            "payload.safetensors": (d / "payload.safetensors", "refusing to load a pickle"),
            "missing.safetensors": (d / "missing.safetensors", "no such")}  # checkpoint, or file


PAYLOAD_MARKER: list[Path] = []  # the file the pickled payload would create if it ever ran
CHECKPOINT_COMMANDS = {
    "info": lambda ck, src, o: ["info", ck],
    "speakers": lambda ck, src, o: ["speakers", "--model", ck],
    "convert": lambda ck, src, o: ["convert", src, "--speaker", "A", "--model", ck, "-o", o / "out.wav"],
    "denoise": lambda ck, src, o: ["denoise", src, "--model", ck, "-o", o / "out.wav"],
    "reconstruct": lambda ck, src, o: ["reconstruct", src, "--model", ck, "-o", o / "out.wav"],
    "encode": lambda ck, src, o: ["encode", src, "--model", ck, "-o", o / "out.npz"],
    "sample-music": lambda ck, src, o: ["sample-music", "-n", "1", "--seconds", "1", "--model", ck, "--out-dir", o],
    "anomaly score": lambda ck, src, o: ["anomaly", "score", src, "--model", ck],
    "export": lambda ck, src, o: ["export", ck, "-o", o / "exported"],
    "resynth --vocoder": lambda ck, src, o: ["resynth", src, "--vocoder", ck, "-o", o / "out.wav"],
}


def test_bad_checkpoints_are_refused_in_one_line_and_no_code_runs(checkpoints, inputs, tmp_path):
    src = inputs["float32.wav"][0]
    problems = []
    for command, build in CHECKPOINT_COMMANDS.items():
        for name, (ck, says) in checkpoints.items():
            out = tmp_path / f"{command}-{name}".replace(" ", "_")
            out.mkdir()
            run = cli(*build(ck, src, out))
            lines = run.stderr.strip().splitlines()
            if run.crash is not None or run.code == 0 or len(lines) != 1 or says not in lines[0] \
                    or str(ck) not in lines[0] or list(out.iterdir()):
                problems.append(f"{command} {name}: exit {run.code}, {run.crash!r}, {lines}")
    assert PAYLOAD_MARKER and not PAYLOAD_MARKER[0].exists(), "a pickled payload ran"
    assert not problems, "\n".join(problems)


def test_a_model_of_another_task_is_refused_in_one_line(inputs, tmp_path):
    src = inputs["float32.wav"][0]
    cases = [
        (["convert", src, "--speaker", "A", "--model", "music"], "has no speakers"),
        (["denoise", src, "--model", "music"], "not a denoiser"),
        (["denoise", src, "--model", "voice_conversion"], "not a denoiser"),
        (["sample-music", "--model", "denoise", "--out-dir", tmp_path], "no learned prior"),
        (["voice", src, "-o", tmp_path / "v.safetensors", "--model", "music"], "no speakers"),
        (["train", "speech_vae", f"train.init={bundled_path('music')}", "data.train=nowhere"], "nowhere"),
    ]
    problems = []
    for args, says in cases:
        run = cli(*args, "-o", tmp_path / "out.wav") if args[0] == "denoise" else cli(*args)
        lines = run.stderr.strip().splitlines()
        if run.crash is not None or run.code == 0 or len(lines) != 1 or says not in lines[0]:
            problems.append(f"{args[:3]}: exit {run.code}, {run.crash!r}, {lines}")
    assert not (tmp_path / "out.wav").exists()
    assert not problems, "\n".join(problems)


def test_usage_errors_are_one_line_too(tmp_path):
    (tmp_path / "folder.wav").mkdir()
    cases = [(["convert"], "Missing argument"), (["convert", "x.wav", "--pitch"], "requires an argument"),
             (["--bogus"], "No such option"), (["denoise", "x.wav", "--strength", "3"], "--strength"),
             (["voice", tmp_path / "folder.wav", "-o", tmp_path / "v.safetensors"], "is a directory")]
    for args, says in cases:
        run = cli(*args)
        lines = run.stderr.strip().splitlines()
        assert run.crash is None and run.code == 2 and len(lines) == 1, (args, run)
        assert lines[0].startswith("audiovae: error: ") and says in lines[0], (args, lines)


# --------------------------------------------------------------------------------------------------------- faults
TINY_RUN = ["model.channels=[32, 32]", "model.latent_dim=8", "model.blocks=1", "data.segment_frames=32",
            "data.cache_dir=null", "train.batch_size=4", "train.warmup_steps=3", "train.log_every=1",
            "train.amp=false", "train.valid_every=1000", "train.ema_decay=0.9"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    for s in range(2):
        (root / f"speaker{s}").mkdir()
        for i in range(4):
            sf.write(root / f"speaker{s}" / f"c{i}.wav", chirp(0.6, fmin=100.0 + 60 * i + 40 * s), SR)
    return root


def _train_cmd(data: Path, out: Path, steps: int, every: int) -> list[str]:
    return [sys.executable, "-m", "audiovae", "train", "speech_vae", f"data.train={data}", f"train.out_dir={out}",
            f"train.steps={steps}", f"train.checkpoint_every={every}", "--device", "cpu", *TINY_RUN]


def _logged_step(out: Path) -> int:
    try:
        lines = (out / "log.csv").read_text().splitlines()
    except FileNotFoundError:
        return 0
    return int(lines[-1].split(",")[0]) if len(lines) > 1 and lines[-1][:1].isdigit() else 0


def test_kill_9_during_training_then_resume_loses_at_most_one_interval_and_continues_exactly(clips, tmp_path):
    """SIGKILL at a random moment (between checkpoints, or while one is written), then --resume: the run ends
    with the very weights of a run never interrupted."""
    import signal
    import subprocess
    import time

    from audiovae.checkpoint import load_checkpoint, load_torch_state

    steps, every = 160, 20
    env = dict(os.environ, OMP_NUM_THREADS="1")
    whole = subprocess.run(_train_cmd(clips, tmp_path / "whole", steps, every), capture_output=True, text=True,
                           env=env, stdin=subprocess.DEVNULL, timeout=600)
    assert whole.returncode == 0, whole.stderr
    run = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(clips, run, steps, every), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while _logged_step(run) < 2 * every + 7 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _logged_step(run)
    assert proc.returncode == -signal.SIGKILL and every < killed_at < steps, killed_at
    saved = load_torch_state(run / "state.pt")["step"]  # loads: never a half-written file
    assert saved % every == 0 and killed_at - saved <= every, (saved, killed_at)
    (run / ".state.pt.tmp-killed.pt").write_bytes(b"PK\x03\x04 what a kill during a save leaves")
    resumed = subprocess.run(_train_cmd(clips, run, steps, every) + ["--resume"], capture_output=True, text=True,
                             env=env, stdin=subprocess.DEVNULL, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert not [p.name for p in run.iterdir() if ".tmp-" in p.name]  # what a kill while saving leaves: cleared
    a = load_checkpoint(tmp_path / "whole" / "model.safetensors").model.state_dict()
    b = load_checkpoint(run / "model.safetensors").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed run did not continue exactly"
    rows = (run / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(s) for s in range(1, steps + 1)]


def _no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")


def test_a_full_disk_while_saving_leaves_the_previous_files_intact(clips, tmp_path, monkeypatch):
    from audiovae import checkpoint
    from audiovae.checkpoint import load_torch_state
    from audiovae.fileio import OutputError
    from audiovae.training import Trainer, load_run_config

    config = load_run_config("speech_vae", [f"data.train={clips}", f"train.out_dir={tmp_path / 'run'}",
                                            "train.steps=6", "train.checkpoint_every=2", *TINY_RUN])
    trainer = Trainer(config, "cpu", progress=False)
    trainer.fit(until=4)
    state = _digest(tmp_path / "run" / "state.pt")

    def half_then_full(obj, f, *args, **kwargs):  # torch.save that runs out of space half-way
        Path(f).write_bytes(b"PK\x03\x04" + b"\0" * 100)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(checkpoint.torch, "save", half_then_full)
    with pytest.raises(OutputError, match=r"state.pt: could not be written .*the existing file is unchanged"):
        trainer.fit()  # model.safetensors of step 6 is written, then state.pt fails
    assert _digest(tmp_path / "run" / "state.pt") == state
    assert load_torch_state(tmp_path / "run" / "state.pt")["step"] == 4  # what --resume continues from
    model = _digest(tmp_path / "run" / "model.safetensors")
    monkeypatch.setattr(checkpoint, "save_file", _no_space)
    with pytest.raises(OutputError, match=r"model.safetensors: could not be written \(No space left on device\)"):
        trainer.save()
    assert _digest(tmp_path / "run" / "model.safetensors") == model
    assert not [p.name for p in (tmp_path / "run").iterdir() if ".tmp-" in p.name]


def test_a_full_disk_while_writing_an_output_keeps_the_old_one(inputs, tmp_path, monkeypatch):
    import audiovae.audio

    src = inputs["float32.wav"][0]
    out = tmp_path / "out.wav"
    out.write_bytes(b"an earlier output")
    monkeypatch.setattr(audiovae.audio.sf, "write", _no_space)
    for args in (["resynth", src, "-o", out, "--n-iter", "2"], ["convert", src, "--speaker", "B", "-o", out]):
        run = cli(*args)
        lines = run.stderr.strip().splitlines()
        assert run.crash is None and run.code == 1 and len(lines) == 1, (args, run)
        assert "No space left on device" in lines[0] and str(out) in lines[0]
    assert out.read_bytes() == b"an earlier output" and sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


@pytest.fixture()
def tiny_disk(tmp_path):
    """A real 192-KiB tmpfs (needs the right to mount, as CI's root has); skipped where mounting is not allowed."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)], capture_output=True
                      ).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN); the fault-injection tests cover it")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_really_full_disk(tiny_disk, inputs):
    """What the fault injection above simulates, on a real file system that fills up."""
    long = tiny_disk.parent / "long.wav"
    sf.write(long, chirp(6.0), SR)  # 265 KB of output at 16 bits: more than the disk holds
    old = tiny_disk / "out.wav"
    sf.write(old, chirp(0.5), SR)
    digest = _digest(old)
    for args in (["resynth", long, "-o", old, "--n-iter", "2"], ["denoise", long, "-o", old],
                 ["export", "vocoder", "-o", tiny_disk / "exported", "--format", "torchscript"]):
        run = cli(*args)
        lines = run.stderr.strip().splitlines()
        assert run.crash is None and run.code == 1 and len(lines) == 1, (args, run)
        assert "No space left on device" in lines[0] or "could not" in lines[0], lines
    assert _digest(old) == digest
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["out.wav"]


def test_a_folder_with_bad_files_finishes_the_good_ones_and_sums_up(inputs, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("pcm_24.flac", "stereo.wav", "text.wav", "nan.wav", "zero.wav"):
        (folder / name).write_bytes(inputs[name][0].read_bytes())
    for command in (["convert", folder, "--speaker", "C", "--out-dir", tmp_path / "c"],
                    ["denoise", folder, "--out-dir", tmp_path / "d"]):
        run = cli(*command)
        assert run.crash is None and run.code == 1, run
        out = Path(command[-1])
        written = sorted(p.name for p in out.iterdir())
        assert len(written) == 2 and all(_wav(out / n) is None for n in written), written
        skipped = [ln for ln in run.stderr.splitlines() if ln.startswith("audiovae: skipped")]
        assert len(skipped) == 3 and all(any(n in ln for ln in skipped) for n in ("text.wav", "nan.wav", "zero.wav"))
        assert run.stdout.splitlines()[-1].endswith(f"2 of 5 files into {out}"), run.stdout


@pytest.fixture(scope="module")
def hour(tmp_path_factory) -> Path:
    """An hour of audio at 8 kHz (a sweep a second... of 4), written block by block."""
    rate = 8000
    path = tmp_path_factory.mktemp("hour") / "hour.wav"
    one = np.concatenate([chirp(3.0, sr=rate, fmax=3800), np.zeros(rate, np.float32)])
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        for _ in range(3600 // 4):
            f.write(one)
    return path


HOUR_COMMANDS = {"info": (["info"], None, "60 min"),
                 "denoise": (["denoise", "-o", "d.wav"], "d.wav", "60 min"),
                 "convert --stream": (["convert", "--speaker", "B", "--stream", "--block", "20", "-o", "c.wav"],
                                      "c.wav", "streamed")}


@pytest.mark.slow
@pytest.mark.parametrize("command", list(HOUR_COMMANDS))
def test_a_one_hour_file(hour, command, tmp_path):
    """An hour of audio: described without reading it whole, denoised (30-s chunks) and converted (streamed) with
    memory bounded by the chunk or the stream window, not the file (each process's peak memory measured)."""
    import subprocess

    args, out, says = HOUR_COMMANDS[command]
    args = [args[0], hour, *[tmp_path / a if a.endswith(".wav") else a for a in args[1:]]]
    measure = ("import resource, runpy, sys\n"
               "sys.argv = ['audiovae'] + sys.argv[1:]\n"
               "try:\n    runpy.run_module('audiovae', run_name='__main__')\n"
               "finally:\n"
               "    print('peak-rss-kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    p = subprocess.run([sys.executable, "-c", measure, *map(str, args)], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=1800)
    assert p.returncode == 0 and says in p.stdout, (args, p.stdout, p.stderr)
    peak_mb = int(p.stderr.split("peak-rss-kb")[-1]) / 1024
    print(f"{command}: peak {peak_mb:.0f} MB")
    if out is not None:
        info = sf.info(tmp_path / out)
        assert abs(info.duration - 3600) < 0.1, info
        assert peak_mb < 2048, peak_mb  # an hour at 22.05 kHz in float32 alone is 318 MB

"""The command line as a package (audiovae/commands): help texts shown as written, panels, the packaged configs,
choices checked when the line is parsed, models of the wrong kind refused, and modules of a readable size."""

from __future__ import annotations

import contextlib
import functools
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from audiovae import cli
from audiovae.cli import app

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")
BRACKETED = re.compile(r"\[[^\[\]]*\]")
BOX = str.maketrans("", "", "│╭╮╰╯─")


def _flat(text: str) -> str:
    """Rendered help as one line of words: no colours, no frame, no wrapping."""
    return " ".join(ANSI.sub("", text).translate(BOX).split())


@functools.cache
def _tree() -> list[tuple[tuple[str, ...], object]]:
    """(path, click command) of the app, every subgroup and every command."""

    def walk(cmd, path: tuple[str, ...]):  # noqa: ANN001, ANN202
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, (*path, name))

    return list(walk(typer.main.get_command(app), ()))


def _help(*path: str, columns: int = 200) -> str:
    r = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(columns), "TERMINAL_WIDTH": str(columns)})
    assert r.exit_code == 0, r.output
    return r.output


def run(*args: str | Path) -> tuple[int, str, str]:
    """``audiovae ARGS`` through the real entry point, in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, ["audiovae", *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as e:
        return (e.code if isinstance(e.code, int) else 1), out.getvalue(), err.getvalue()
    finally:
        sys.argv = argv
    return 0, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------------------------------------- help
@pytest.mark.parametrize("path", [p for p, _ in _tree()], ids=lambda p: " ".join(p) or "audiovae")
def test_no_help_text_loses_a_bracket(path):
    """Rich reads `[export]` in `pip install 'audiovae[export]'` or `[dim, frames]` as markup and drops it: every
    bracketed string of a command's help and of its options' helps must be in what --help shows."""
    cmd = dict(_tree())[path]
    sources = [cmd.help, cmd.short_help] + [getattr(p, "help", None) for p in cmd.params]
    wanted = {b for text in sources if text for b in BRACKETED.findall(" ".join(text.split()))}
    shown = _flat(_help(*path))
    assert not [b for b in wanted if b not in shown], shown


def test_the_brackets_that_used_to_vanish_are_shown():
    assert "pip install 'audiovae[export]'" in _flat(_help("export"))
    assert "pip install 'audiovae[ui]'" in _flat(_help("ui"))
    assert "z0 [latent_dim, latent_frames]" in _flat(_help("encode"))
    assert "z0 [dim, frames]" in _flat(_help("encode"))
    assert "a .npy array [latent_dim, frames]" in _flat(_help("decode"))
    assert "float32 [latent_dim]" in _flat(_help("vector"))


PANELS = {
    "Voice": {"speakers", "convert", "voice"},
    "Denoise": {"denoise"},
    "Music": {"sample-music"},
    "Latent tools": {"reconstruct", "encode", "decode", "interpolate", "vector", "edit", "traverse", "latent-map"},
    "Training and data": {"train", "configs", "cache", "corpus"},
    "Evaluate and detect": {"evaluate", "anomaly"},
    "Export and page": {"export", "ui"},
    "Inspect": {"info", "example", "resynth", "plot"},
}


def test_top_help_groups_the_commands_in_panels_one_line_each():
    panels: dict[str, list[str]] = {}
    lines: dict[str, int] = {}
    panel = None
    for line in ANSI.sub("", _help(columns=80)).splitlines():
        if m := re.match(r"╭─ (.+?) ─+╮$", line):
            panel = m.group(1)
            panels[panel], lines[panel] = [], 0
        elif line.startswith("╰"):
            panel = None
        elif panel is not None:
            lines[panel] += 1
            if m := re.match(r"│ (\S+)\s{2,}\S", line):
                panels[panel].append(m.group(1))
    assert list(panels) == ["Options", *PANELS], list(panels)
    assert {k: set(v) for k, v in panels.items() if k != "Options"} == PANELS
    assert all(lines[k] == len(panels[k]) for k in PANELS), lines  # at 80 columns, one line per command
    assert {"--install-completion", "--show-completion"} <= set(_flat(_help()).split())  # shell completion is on


# ---------------------------------------------------------------------------------------------------- configs
CONFIGS = sorted(p.stem for p in (ROOT / "audiovae" / "configs").glob("*.yaml"))


def test_configs_lists_every_packaged_config_with_its_description():
    assert len(CONFIGS) >= 20
    r = CliRunner().invoke(app, ["configs"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    listed = [ln.split()[0] for ln in r.output.splitlines() if ln[:1].strip()]
    assert listed[: len(CONFIGS)] == CONFIGS
    for name in CONFIGS:
        first = (ROOT / "audiovae" / "configs" / f"{name}.yaml").read_text().splitlines()[0].lstrip("#").strip()
        assert f"{name} {first}" in " ".join(r.output.split())
    train = _flat(_help("train"))
    assert all(name in train for name in CONFIGS) and "audiovae configs" in train


# ---------------------------------------------------------------------------------------------------- choices
BAD_CHOICES = [
    (["denoise", "x.wav", "--method", "magic"], "--method", "mask, vocoder, prior"),
    (["resynth", "x.wav", "-o", "y.wav", "--init", "zero"], "--init", "random, pghi"),
    (["interpolate", "a.wav", "b.wav", "-o", "o.wav", "-m", "music", "--path", "cubic"], "--path", "linear, slerp"),
    (["latent-map", "d", "-o", "m.png", "-m", "music", "--split", "dev"], "--split", "train, valid, test, all"),
    (["voice", "a.wav", "-o", "v.safetensors", "--method", "magic"], "--method", "adapt, fit, blend, encoder"),
    (["cache", "d", "--layout", "timit"], "--layout", "auto, manifest, speakers, vctk"),
    (["anomaly", "fit", "d", "-o", "x.safetensors", "--score", "mse"], "--score", "nelbo, recon"),
    (["evaluate", "denoise", "--data", "d", "--split", "train"], "--split", "test, valid"),
    (["evaluate", "denoise", "--data", "d", "--method", "magic"], "--method", "mask, vocoder, prior"),
    (["evaluate", "vocoder", "--data", "d", "--voices", "robots"], "--voices", "real, synthetic, all"),
    (["evaluate", "anomaly", "-m", "x", "--data", "d", "--split", "train"], "--split", "test, valid"),
    (["convert", "x.wav", "-s", "A", "--device", "tpu"], "--device", "auto, cpu, cuda"),
    (["export", "voice_conversion", "-o", "out", "--format", "tflite"], "--format", "torchscript, onnx"),
]


@pytest.mark.parametrize(("args", "option", "choices"), BAD_CHOICES, ids=lambda a: " ".join(a[:2]) if
                         isinstance(a, list) else None)
def test_a_bad_choice_is_a_usage_error_naming_the_choices(args, option, choices, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(*args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, err)
    assert lines[0].startswith(f"audiovae: error: Invalid value for '{option}'") and choices in lines[0], lines
    assert not out and not list(tmp_path.iterdir())


def test_choices_are_listed_in_the_help_and_a_gpu_index_passes():
    assert "[mask|vocoder|prior]" in _help("denoise") and "[auto|cpu|cuda|cuda:N]" in _help("denoise")
    assert "[torchscript|onnx]" in _help("export")
    code, _, err = run("resynth", "missing.wav", "-o", "out.wav", "--device", "cuda:1")
    assert code == 1 and "Invalid value" not in err  # parsed; then CUDA or the file is missing


def test_the_listed_choices_are_the_librarys():
    from audiovae.commands import _shared, data, denoise, export, voice
    from audiovae.data.layouts import LAYOUTS
    from audiovae.device import DEVICE_CHOICES
    from audiovae.export import FORMATS
    from audiovae.pipelines import anomaly, voices
    from audiovae.pipelines import denoise as denoising
    from audiovae.vocoders import VOCODERS

    assert voice.METHODS == voices.METHODS and denoise.METHODS == denoising.METHODS
    assert data.LAYOUTS == ("auto", *LAYOUTS) and _shared.DEVICES == DEVICE_CHOICES and export.FORMATS == FORMATS
    assert set(anomaly.SCORES) == {"nelbo", "recon"} and _shared.vocoder_names() == list(VOCODERS)
    # the package's own vocoders are offered (collecting tests/test_vocoders.py registers a test one besides)
    assert {"mel-griffin-lim", "griffin-lim", "neural"} <= {n for n, c in VOCODERS.items()
                                                            if c.__module__.startswith("audiovae.")}


def test_shell_completion_offers_the_choices():
    def complete(words: str) -> list[str]:
        cword = len(words.split()) - (not words.endswith(" "))  # the index of the word being completed
        env = {"_AUDIOVAE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        return CliRunner().invoke(app, [], env=env, prog_name="audiovae").output.split()

    assert complete("audiovae denoise x.wav --method ") == ["mask", "vocoder", "prior"]
    assert complete("audiovae train speech_c") == ["speech_cvae"]
    assert complete("audiovae resynth x.wav --vocoder mel") == ["mel-griffin-lim"]


# ------------------------------------------------------------------------------------------- models of a kind
WRONG_KIND = [
    (["anomaly", "score", "{example}", "--model", "voice_conversion"],
     "voice_conversion is a voice-conversion model, not an anomaly detector (fit one with `audiovae anomaly fit`)"),
    (["anomaly", "score", "{example}", "--model", "denoise"], "denoise is a denoiser, not an anomaly detector"),
    (["convert", "{example}", "-s", "A", "--model", "denoise", "-o", "c.wav"],
     "denoise is a denoiser, not a voice-conversion model (it has no speakers"),
    (["denoise", "{example}", "--model", "music", "-o", "d.wav"], "music is a music model, not a denoiser"),
    (["denoise", "{example}", "--model", "denoise", "--method", "prior", "-o", "d.wav"],
     "denoise is a denoiser, not a VAE of clean speech"),
    (["sample-music", "--model", "voice_conversion", "--out-dir", "s"],
     "voice_conversion is a voice-conversion model, not a music model (it has no learned prior)"),
    (["speakers", "--model", "music"], "music is a music model, not a voice-conversion model"),
]


@pytest.mark.parametrize(("args", "says"), WRONG_KIND, ids=["anomaly-vc", "anomaly-denoiser", "convert-denoiser",
                                                            "denoise-music", "prior-denoiser", "music-vc",
                                                            "speakers-music"])
def test_a_model_of_the_wrong_kind_is_named_for_what_it_is(args, says, example_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(*(str(example_path) if a == "{example}" else a for a in args))
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"audiovae: error: {says}"), err
    assert not list(tmp_path.iterdir())


def test_info_shows_pitch_registers_in_hz():
    from audiovae.commands.basics import _register

    code, out, err = run("info", "voice_conversion")
    assert code == 0, err
    pitch = out.split("\n  pitch\n", 1)[1].splitlines()[:8]
    assert [ln.split()[0] for ln in pitch] == list("ABCDEFGH")
    assert all(re.fullmatch(r"\s+[A-H]\s+median F0 \d+ Hz \(s\.d\. \d+\.\d semitones\)", ln) for ln in pitch), pitch
    assert "median F0 130 Hz" in pitch[0] and "[4.86" not in out  # awb's 130.4 Hz (the voices' table agrees)
    assert _register([5.0, 0.1]) == "median F0 148 Hz (s.d. 1.7 semitones)"  # an older checkpoint: no median


# --------------------------------------------------------------------------------------------------- structure
def test_every_command_module_is_at_most_600_lines():
    modules = [ROOT / "audiovae" / "cli.py", *sorted((ROOT / "audiovae" / "commands").glob("*.py"))]
    assert len(modules) >= 10
    sizes = {p.name: len(p.read_text().splitlines()) for p in modules}
    assert max(sizes.values()) <= 600, sizes
    assert sizes["cli.py"] <= 80, sizes  # a table of contents and main()


def test_help_does_not_import_torch():
    code = ("import sys; sys.argv = ['audiovae', *sys.argv[1:]]\n"
            "from audiovae.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH', file=sys.stderr)")
    for args in (["--help"], ["train", "--help"], ["configs"], ["evaluate", "--help"]):
        p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
        assert p.stderr.strip().splitlines()[-1] == "NO TORCH", (args, p.stderr)

"""One-shot voices on a tiny speaker-conditioned model: fitting a voice from recordings, voice files, `audiovae
voice`, `convert --speaker FILE`, and `evaluate vc --one-shot` (behaviour; quality is the recipe's to measure)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import soundfile as sf
import torch
from conftest import SR, chirp, run_cli, write
from safetensors import safe_open
from test_convert import NAMES, harmonic, tiny_cvae

from audiovae.checkpoint import save_checkpoint
from audiovae.data.manifest import Entry, write_manifest
from audiovae.errors import ConfigError
from audiovae.pipelines.convert import Voice, convert
from audiovae.pipelines.latent import logmel
from audiovae.pipelines.voices import (
    VoiceFileError,
    _reconstruction_error,
    encoder_embedding,
    film_fingerprint,
    fit_embedding,
    load_voice,
    model_fingerprint,
    reference_voice,
    save_voice,
    target_voice,
)
from audiovae.vocoders import GriffinLim


def decoding_error(ckpt, refs, voice: torch.Tensor, film_offset: torch.Tensor | None = None) -> torch.Tensor:  # noqa: ANN001
    """How well the model's decoding of the references' content with each row of ``voice`` matches them."""
    with torch.no_grad():
        mels = [logmel(w, ckpt) for w in refs]
        return _reconstruction_error(ckpt.model, [ckpt.model.encode(m).mode() for m in mels], mels, voice,
                                     film_offset)


def test_fitted_voice_reproduces_the_references_better_than_any_known_voice():
    ckpt = tiny_cvae()
    refs = [harmonic(170.0, 2.0), harmonic(185.0, 1.5)]
    table = decoding_error(ckpt, refs, ckpt.model.speakers.weight)
    encoder = decoding_error(ckpt, refs, encoder_embedding(refs, ckpt))
    fitted = fit_embedding(refs, ckpt, steps=60)
    assert fitted.shape == (1, 64)
    error = float(decoding_error(ckpt, refs, fitted))
    # measured 0.90-0.93 of the best known voice's error over seeds 0-5
    assert error < 0.97 * min(float(table.min()), float(encoder)), (error, table, encoder)
    torch.testing.assert_close(fit_embedding(refs, ckpt, steps=60), fitted)  # deterministic
    other = decoding_error(ckpt, [chirp_wave(3.5)], fitted)  # fitted to these references, not to anything
    assert float(other) > error
    before = {k: v.clone() for k, v in ckpt.model.state_dict().items()}
    voice = reference_voice(ckpt, refs, "dana")  # adapt: the vector, then the decoder's FiLM offsets
    assert voice.name == "dana" and not voice.in_table and abs(voice.register.hz / 176 - 1) < 0.05
    assert voice.film_offset.shape == (1, sum(ckpt.model.decoder.film_sizes)) and voice.film_offset.abs().max() > 0
    adapted = float(decoding_error(ckpt, refs, voice.condition, voice.film_offset))
    vector_only = float(decoding_error(ckpt, refs, voice.condition))
    # the offsets go further than the vector can (a little, on an untrained decoder; 0.015-0.033 over seeds 0-5)
    assert adapted < vector_only - 0.005, (adapted, vector_only)
    assert float(decoding_error(ckpt, [chirp_wave(3.5)], voice.condition, voice.film_offset)) > adapted
    assert reference_voice(ckpt, refs, method="fit", steps=5).film_offset is None
    assert all(p.grad is None for p in ckpt.model.parameters())  # the model is left as it was
    assert all(torch.equal(v, before[k]) for k, v in ckpt.model.state_dict().items())


def chirp_wave(seconds: float) -> torch.Tensor:
    return torch.from_numpy(chirp(seconds, fmin=300.0))


def test_references_are_checked():
    ckpt = tiny_cvae()
    with pytest.raises(ConfigError, match=r"2\.5 s of reference speech; a voice needs at least 3 s"):
        reference_voice(ckpt, [harmonic(170.0, 1.5), harmonic(170.0, 1.0)])
    with pytest.raises(ConfigError, match="no reference recordings"):
        reference_voice(ckpt, [])
    with pytest.raises(ConfigError, match="--method 'magic'"):
        reference_voice(ckpt, [harmonic(170.0, 3.0)], method="magic")
    with pytest.raises(ConfigError, match="no speaker encoder"):
        reference_voice(tiny_cvae(speaker_encoder=False), [harmonic(170.0, 3.0)], method="encoder")
    plain = reference_voice(tiny_cvae(speaker_encoder=False), [harmonic(170.0, 3.0)], method="fit", steps=5)
    assert plain.condition.shape == (1, 64)  # fitting needs no speaker encoder


def test_voice_files_round_trip_and_belong_to_their_model(tmp_path):
    ckpt = tiny_cvae()
    voice = reference_voice(ckpt, [harmonic(170.0, 3.0)], "dana", steps=10)
    path = save_voice(voice, tmp_path / "dana.safetensors", ckpt, method="adapt")
    loaded = load_voice(path, ckpt)
    torch.testing.assert_close(loaded.condition, voice.condition)
    torch.testing.assert_close(loaded.film_offset, voice.film_offset)
    assert loaded.name == "dana" and loaded.register.to_list() == voice.register.to_list()
    assert target_voice(ckpt, str(path)).name == "dana" and target_voice(ckpt, "ben").name == "ben"
    wave = torch.from_numpy(chirp(1.0))
    gl = GriffinLim(ckpt.mel, n_iter=4)
    converted = convert(wave, ckpt, loaded, vocoder=gl)[0]
    torch.testing.assert_close(converted, convert(wave, ckpt, voice, vocoder=gl)[0])
    vector_only = Voice(voice.name, voice.condition, voice.register)
    assert (converted - convert(wave, ckpt, vector_only, vocoder=gl)[0]).abs().max() > 1e-3  # the offsets are used
    fit_file = save_voice(vector_only, tmp_path / "vector.safetensors", ckpt)  # no offsets: still a version-1 file
    assert safe_open(fit_file, "pt").metadata()["version"] == "1" and load_voice(fit_file, ckpt).film_offset is None
    refilmed = tiny_cvae()  # the same table, other FiLM layers: the offsets would mean something else
    with torch.no_grad():
        refilmed.model.decoder.stages[0].blocks[0].film.proj.bias.add_(0.1)
    with pytest.raises(VoiceFileError, match="fitted to another model"):
        load_voice(path, refilmed)
    assert load_voice(fit_file, refilmed).name == "dana"  # a vector alone depends on the table only
    with pytest.raises(VoiceFileError, match="fitted to another model"):
        load_voice(path, tiny_cvae(seed=1))
    model_file = save_checkpoint(tmp_path / "model.safetensors", ckpt)
    with pytest.raises(VoiceFileError, match="not a voice file"):
        load_voice(model_file, ckpt)
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:40])
    with pytest.raises(VoiceFileError, match="not a readable voice file"):
        load_voice(tmp_path / "cut.safetensors", ckpt)
    with pytest.raises(VoiceFileError, match="no such voice file"):
        load_voice(tmp_path / "none.safetensors", ckpt)
    with pytest.raises(ConfigError, match="speaker of the model's table"):
        save_voice(target_voice(ckpt, "ben"), tmp_path / "ben.safetensors", ckpt)
    # a vector-only voice, as version 1 wrote it, still loads; a newer version or a foreign offset does not
    from safetensors.torch import save_file

    meta = {"format": "audiovae-voice", "version": "1", "name": "old", "model": model_fingerprint(ckpt),
            "register": "null"}
    save_file({"embedding": voice.condition.contiguous()}, tmp_path / "v1.safetensors", metadata=meta)
    old = load_voice(tmp_path / "v1.safetensors", ckpt)
    assert old.name == "old" and old.film_offset is None and torch.equal(old.condition, voice.condition)
    save_file({"embedding": voice.condition.contiguous()}, tmp_path / "v9.safetensors",
              metadata=meta | {"version": "9"})
    with pytest.raises(VoiceFileError, match="version '9'; this audiovae reads versions up to 2"):
        load_voice(tmp_path / "v9.safetensors", ckpt)
    v2 = meta | {"version": "2", "film": film_fingerprint(ckpt)}
    save_file({"embedding": voice.condition.contiguous(), "film_offset": torch.zeros(1, 7)},
              tmp_path / "odd.safetensors", metadata=v2)
    with pytest.raises(VoiceFileError, match=r"FiLM offsets of shape \(1, 7\), not this model's"):
        load_voice(tmp_path / "odd.safetensors", ckpt)
    save_file({"embedding": voice.condition.contiguous(), "film_offset": voice.film_offset * float("nan")},
              tmp_path / "nan.safetensors", metadata=v2)
    with pytest.raises(VoiceFileError, match="values that are not finite"):
        load_voice(tmp_path / "nan.safetensors", ckpt)


def test_voice_command_and_convert_with_a_voice_file(tmp_path):
    ckpt_path = save_checkpoint(tmp_path / "vc.safetensors", tiny_cvae())
    refs = [write(tmp_path / f"dana{i}.wav", harmonic(170.0 + 10 * i, 2.0).numpy(), SR) for i in range(2)]
    src = write(tmp_path / "src.wav", chirp(1.0), SR)
    r = run_cli("voice", *refs, "-o", tmp_path / "dana.safetensors", "-m", ckpt_path)
    assert r.returncode == 0, r.stderr
    assert "voice dana0 from 2 recording(s) (adapt" in r.stdout and "median F0" in r.stdout
    r = run_cli("convert", src, "--speaker", tmp_path / "dana.safetensors", "-m", ckpt_path, "--vocoder",
                "griffin-lim", "-o", tmp_path / "out.wav")
    assert r.returncode == 0, r.stderr
    assert "-> dana0" in r.stdout and sf.info(tmp_path / "out.wav").frames == SR
    from audiovae import load

    vc = load(ckpt_path, vocoder="griffin-lim")
    want, _ = vc.convert(src, tmp_path / "dana.safetensors")  # the API takes the voice file too
    got, _ = sf.read(tmp_path / "out.wav", dtype="float32")
    assert float((want.clamp(-1, 1) - torch.from_numpy(got)).abs().max()) < 1e-3  # a clipped 16-bit file
    # --speaker-ref fits the same voice as `audiovae voice`: the same output
    r = run_cli("convert", src, "--speaker-ref", refs[0], "--speaker-ref", refs[1], "-m", ckpt_path, "--vocoder",
                "griffin-lim", "-o", tmp_path / "ref.wav")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ref.wav").read_bytes() == (tmp_path / "out.wav").read_bytes()
    # bad input: one line, exit 1, nothing written
    short = write(tmp_path / "short.wav", harmonic(170.0, 1.0).numpy(), SR)
    r = run_cli("voice", short, "-o", tmp_path / "short.safetensors", "-m", ckpt_path)
    assert r.returncode == 1 and "short.wav: 1.0 s of reference speech" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "short.safetensors").exists()
    r = run_cli("voice", *refs, "-o", tmp_path / "dana.npy", "-m", ckpt_path)
    assert r.returncode == 1 and "ends in .safetensors" in r.stderr
    other = save_checkpoint(tmp_path / "other.safetensors", tiny_cvae(seed=1))
    r = run_cli("convert", src, "--speaker", tmp_path / "dana.safetensors", "-m", other, "-o", tmp_path / "x.wav")
    assert r.returncode == 1 and "fitted to another model" in r.stderr and not (tmp_path / "x.wav").exists()
    assert len(r.stderr.strip().splitlines()) == 1


def espeak_corpus(root, voices: dict[str, str], sentences: int):  # noqa: ANN001, ANN201
    """A parallel test set read by espeak-ng voices (name -> espeak voice)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    texts = ["The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
             "It is easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
             "Rice is often served in round bowls.", "The juice of lemons makes fine punch."][:sentences]
    entries = []
    for name, voice in voices.items():
        for i, text in enumerate(texts):
            path = root / name / f"{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
            entries.append(Entry(str(path.relative_to(root)), sf.info(path).duration, "test", speaker=name, text=text))
    write_manifest(root / "manifest.jsonl", entries)
    return root


def test_evaluate_one_shot_scores_voices_left_out_of_training(tmp_path):
    pytest.importorskip("resemblyzer")
    corpus = espeak_corpus(tmp_path / "corpus", {"anna": "en+f3", "ben": "en-us", "cleo": "en+m3"}, 4)
    two = tiny_cvae(n_speakers=2)  # knows anna and ben; cleo is the voice it never heard
    two.speakers = NAMES[:2]
    model = save_checkpoint(tmp_path / "two.safetensors", two)
    r = run_cli("evaluate", "vc", "--model", model, "--data", corpus, "--sentences", "1", "--references", "2",
                "--one-shot", "--method", "adapt,fit,encoder", "--json", tmp_path / "one_shot.json")
    assert r.returncode == 0, r.stderr
    rows = ("one-shot adapt", "one-shot fit", "one-shot encoder", "nearest", "in-table (2 pairs)", "ceiling", "floor")
    assert all(row in r.stdout for row in rows)
    report = json.loads((tmp_path / "one_shot.json").read_text())
    assert report["targets"] == ["cleo"] and report["sources"] == ["anna", "ben"]
    assert report["nearest"]["cleo"] in ("anna", "ben") and report["in_table_pairs"] == 2
    assert report["reference_seconds"]["cleo"] >= 3.0 and report["fit_seconds"]["fit"]["cleo"] > 0
    floor, ceiling, fit = report["floor"], report["ceiling"], report["one_shot"]["fit"]
    assert floor["closer_to_target"] == 0.0 and ceiling["closer_to_target"] == 1.0
    assert 0 < ceiling["mcd_db"] < floor["mcd_db"] < fit["mcd_db"] < 20.0  # untrained: worst
    assert report["per_target"]["cleo"]["fit"] == fit["sim_target"]  # one target: its row is the whole
    assert set(report["per_target"]["cleo"]) == {"adapt", "fit", "encoder", "nearest"}
    r = run_cli("evaluate", "vc", "--model", model, "--data", corpus, "--one-shot", "--method", "fit,magic")
    assert r.returncode == 1 and "--method magic: choose from adapt, fit, blend, encoder" in r.stderr
    full = save_checkpoint(tmp_path / "full.safetensors", tiny_cvae())  # knows every voice: nothing left out
    r = run_cli("evaluate", "vc", "--model", full, "--data", corpus, "--one-shot")
    assert r.returncode == 1 and "never heard" in r.stderr and "exclude_speakers" in r.stderr
    r = run_cli("evaluate", "vc", "--model", model, "--data", corpus, "--sentences", "2", "--references", "2",
                "--one-shot")
    assert r.returncode == 1 and "4 parallel test sentences; it needs at least 5" in r.stderr
    r = run_cli("evaluate", "vc", "--model", model, "--data", corpus, "--sentences", "1", "--references", "2",
                "--one-shot", "--skip", "1")
    assert r.returncode == 1 and "3 parallel test sentences after skipping 1; it needs at least 4" in r.stderr


def test_evaluate_one_shot_into_a_real_speaker(tmp_path):
    """--one-shot --real: the model's voices converted into the voice of a folder of recordings of one speaker."""
    pytest.importorskip("resemblyzer")
    corpus = espeak_corpus(tmp_path / "corpus", {"anna": "en+f3", "ben": "en-us"}, 3)
    real = espeak_corpus(tmp_path / "dora", {"wav": "en+m7"}, 5) / "wav"  # dora/wav/*.wav: the speaker is "dora"
    two = tiny_cvae(n_speakers=2)
    two.speakers = NAMES[:2]
    model = save_checkpoint(tmp_path / "two.safetensors", two)
    r = run_cli("evaluate", "vc", "--model", model, "--data", corpus, "--one-shot", "--real", real, "--references",
                "2", "--sentences", "1", "--method", "adapt", "--json", tmp_path / "real.json")
    assert r.returncode == 0, r.stderr
    assert all(row in r.stdout for row in ("one-shot adapt", "nearest", "ceiling", "floor"))
    assert "in-table" not in r.stdout and "MCD" not in r.stdout  # nothing parallel to compare with
    report = json.loads((tmp_path / "real.json").read_text())
    assert report["targets"] == ["dora"] and report["sources"] == ["anna", "ben"] and report["in_table"] is None
    assert report["floor"]["closer_to_target"] == 0.0 and report["ceiling"]["closer_to_target"] == 1.0
    assert report["reference_seconds"]["dora"] >= 3.0 and report["nearest"]["dora"] in ("anna", "ben")
    assert report["one_shot"]["adapt"]["mcd_db"] is None  # strict JSON: no NaN
    r = run_cli("evaluate", "vc", "--model", model, "--data", corpus, "--one-shot", "--real", real, "--skip", "1")
    assert r.returncode == 1 and "--skip applies to --one-shot on the corpus's voices" in r.stderr
    r = run_cli("evaluate", "vc", "--model", model, "--data", corpus, "--one-shot", "--real", real, "--references",
                "3", "--sentences", "2")
    assert r.returncode == 1 and "5 recording(s): need 3 for the voice, 2 for the ceiling" in r.stderr


def test_fit_windows_cover_the_references_within_their_bounds() -> None:
    """A fit step decodes one window of at most FIT_CROP_SECONDS (voices._FitWindows): drawn in proportion to each
    reference's length, inside it, the same on every run, and the whole content when it fits one window."""
    from types import SimpleNamespace

    from audiovae.pipelines.voices import _FitWindows

    hop, rate = 4, 86.0  # the bundled model's latent hop and the front end's frame rate
    model = SimpleNamespace(hop_factor=hop)
    zs = [torch.arange(n, dtype=torch.float32).expand(1, 2, n).clone() for n in (30, 200)]
    mels = [torch.arange(n * hop, dtype=torch.float32).expand(1, 3, n * hop).clone() for n in (30, 200)]
    crops = _FitWindows(model, (mels, zs), 4.0, rate)
    assert crops.width == round(4.0 * rate / hop) and not crops.whole()
    first = [crops.draw() for _ in range(200)]
    picked_long = 0
    for z, mel, margin in first:
        (z,), (mel,) = z, mel
        start = int(z[0, 0, 0])
        assert z.shape[-1] <= crops.width and margin == hop
        assert torch.equal(z[0, 0], torch.arange(start, start + z.shape[-1], dtype=torch.float32))
        assert torch.equal(mel[0, 0], torch.arange(start * hop, (start + z.shape[-1]) * hop, dtype=torch.float32))
        picked_long += z.shape[-1] == crops.width
    assert 150 < picked_long < 200  # the long reference, 200 of 230 frames, drawn about 87 % of the time
    again = _FitWindows(model, (mels, zs), 4.0, rate)
    assert all(torch.equal(a[0][0], again.draw()[0][0]) for a in first[:20])
    whole = _FitWindows(model, (mels[:1], zs[:1]), 4.0, rate)
    assert whole.whole() and whole.draw() == (zs[:1], mels[:1], 0)
    assert _FitWindows(model, (mels, zs), None, rate).draw()[2] == 0


def test_fit_window_error_scores_only_inside_the_margin() -> None:
    """The loss of a window leaves its margin out: a decoding wrong only there scores zero, and a window too short
    for a margin is scored whole."""
    from types import SimpleNamespace

    from audiovae.pipelines.voices import _reconstruction_error

    hop = 4
    model = SimpleNamespace(decode=lambda z, voice, offset: z.repeat_interleave(hop, dim=-1)[:, :1])
    z = torch.ones(1, 1, 10)
    mel = torch.ones(1, 1, 40)
    mel[..., :hop] = 5.0  # differs from the decoding in the first latent frame's log-mel frames only
    mel[..., -hop:] = -3.0
    voice = torch.zeros(1, 2)
    assert float(_reconstruction_error(model, [z], [mel], voice, None, margin=hop)) == 0.0
    assert float(_reconstruction_error(model, [z], [mel], voice, None, margin=0)) == pytest.approx((4 * 4 + 4 * 4) / 40)

"""Real speech and recorded noise for denoising: the speechocean762 layout adapter (a tiny tree in the authors'
layout, built here; the project never needs the corpus itself), a noisy corpus of real speakers with recorded noise
types kept out of training, and the evaluation's real-speech rows."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, run_cli

from audiovae.data.corpora.noisy import CLEAN, NoisyCorpusConfig, build_noisy_corpus, recorded_noises, recorded_span
from audiovae.data.layouts import SPEECHOCEAN_PREFIX, detect_layout, discover
from audiovae.data.manifest import read_manifest
from audiovae.errors import AudiovaeError

SENTENCES = ["IT'S JUST SO HARD TO PICTURE", "WE SPEAK OUT WHEN WE FEEL WE SHOULD", "I COULD DO WITH A BREAK",
             "THE BIRCH CANOE SLID ON THE SMOOTH PLANKS"]
# speaker id -> (espeak-ng voice, sex, the release's split)
SPEAKERS = {"0036": ("en-us+f3", "f", "train"), "0482": ("en-gb", "m", "train"), "1027": ("en-us+m3", "m", "train"),
            "0120": ("en-gb+f2", "f", "test"), "0024": ("en-us+m1", "m", "test")}


def speechocean_tree(root: Path, ext: str = ".WAV", scp: bool = True, sentences: list[str] = SENTENCES) -> Path:
    """A tiny speechocean762 release: ``WAVE/SPEAKERnnnn/<utt><ext>`` and Kaldi tables for ``train/`` and
    ``test/`` (``wav.scp`` optional: some copies lack it), ``sentences`` (four) read by espeak-ng per speaker at
    16 kHz."""
    tables: dict[str, dict[str, list[str]]] = {s: {n: [] for n in ("wav.scp", "text", "utt2spk", "spk2gender",
                                                                   "spk2age")} for s in ("train", "test")}
    for spk, (voice, sex, split) in SPEAKERS.items():
        folder = root / "WAVE" / f"SPEAKER{spk}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(sentences):
            utt = f"{spk}{i:05d}"
            tmp = folder / f"{utt}.tmp.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(tmp), text.lower()], check=True)
            wave, sr = sf.read(tmp, dtype="float32")
            tmp.unlink()
            idx = np.round(np.arange(0, len(wave), sr / 16000)).astype(int).clip(0, len(wave) - 1)
            sf.write(folder / f"{utt}{ext}", wave[idx], 16000, format="FLAC" if ext.lower() == ".flac" else "WAV")
            t = tables[split]
            t["wav.scp"].append(f"{utt}\tWAVE/SPEAKER{spk}/{utt}{ext}")
            t["text"].append(f"{utt}\t{text}")
            t["utt2spk"].append(f"{utt}\t{spk}")
        tables[split]["spk2gender"].append(f"{spk}\t{sex}")
        tables[split]["spk2age"].append(f"{spk}\t30")
    for split, files in tables.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for name, lines in files.items():
            if name != "wav.scp" or scp:
                (root / split / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def speechocean(tmp_path_factory) -> Path:
    return speechocean_tree(tmp_path_factory.mktemp("speechocean762"))


def noise_folder(root: Path) -> Path:
    """Three recorded-noise types as a noise folder: rain-like (bursty broadband), fan-like (hum + noise), a tap
    (clicks); each a 3-s file at 16 kHz."""
    rng = np.random.default_rng(0)
    sr, n = 16000, 48000
    t = np.arange(n) / sr
    kinds = {"rain": rng.standard_normal(n) * (rng.random(n) < 0.3),
             "fan": 0.3 * np.sin(2 * np.pi * 120 * t) + 0.2 * rng.standard_normal(n),
             "tap": np.repeat(rng.random(n // 400) < 0.1, 400) * rng.standard_normal(n)}
    for name, x in kinds.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        sf.write(root / name / f"{name}.flac", (0.3 * x / np.abs(x).max()).astype(np.float32), sr)
    return root


def test_speechocean_layout_keeps_the_speaker_split_sex_and_text(speechocean):
    assert detect_layout(speechocean) == "speechocean762"
    entries = discover(speechocean)
    assert len(entries) == len(SPEAKERS) * len(SENTENCES)
    by_speaker = {e.speaker: e for e in entries}
    assert set(by_speaker) == {SPEECHOCEAN_PREFIX + s for s in SPEAKERS}
    for spk, (_, sex, split) in SPEAKERS.items():
        es = [e for e in entries if e.speaker == SPEECHOCEAN_PREFIX + spk]
        assert {e.sex for e in es} == {sex}
        splits = {e.split for e in es}
        assert len(splits) == 1  # whole speakers: never one speaker in two splits
        assert (splits == {"test"}) == (split == "test")
        assert all(Path(e.path).is_file() and e.duration > 0.5 for e in es)
    assert sum(e.speaker == SPEECHOCEAN_PREFIX + "0482" and e.text == "i could do with a break" for e in entries) == 1
    valid = {e.speaker for e in entries if e.split == "valid"}
    assert len(valid) == 1  # one of the three train speakers held out for validation, as a whole speaker


def test_speechocean_layout_reads_flac_without_wav_scp(tmp_path, speechocean):
    root = speechocean_tree(tmp_path / "flac", ext=".flac", scp=False)
    a, b = discover(speechocean), discover(root)
    assert [(e.speaker, e.split, e.text) for e in a] == [(e.speaker, e.split, e.text) for e in b]
    assert all(e.path.endswith(".flac") for e in b)


def test_speechocean_without_split_tables_is_a_clear_error(tmp_path):
    (tmp_path / "WAVE" / "SPEAKER0001").mkdir(parents=True)
    with pytest.raises(AudiovaeError, match="train/utt2spk"):
        discover(tmp_path, layout="speechocean762")


def test_a_noise_crop_is_never_a_silent_stretch_of_its_recording():
    """A recording that is silent for 90 % of its length still gives crops that carry its noise (scaled to an SNR, a
    silent crop would leave the "mixture" clean); one silent throughout is refused with a reason."""
    from audiovae.data.mixing import audible_crop, rms

    rng = np.random.default_rng(0)
    recording = np.zeros(100_000, np.float32)
    recording[40_000:50_000] = rng.standard_normal(10_000)
    crops = [audible_crop(recording, 4_000, rng) for _ in range(50)]
    assert all(rms(c) > 0.03 * rms(recording) for c in crops)
    with pytest.raises(ValueError, match="silence"):
        audible_crop(np.zeros(1000, np.float32), 100, rng)


def test_recorded_noise_spans_never_overlap_between_splits():
    x = np.arange(1000, dtype=np.float32)
    spans = {split: recorded_span(x, span) for split, span in
             (("train", (0.0, 0.75)), ("valid", (0.75, 0.85)), ("test", (0.85, 1.0)))}
    assert [len(s) for s in spans.values()] == [750, 100, 150]
    assert spans["train"].max() < spans["valid"].min() and spans["valid"].max() < spans["test"].min()


def test_recorded_noise_folder_rejects_builtin_names(tmp_path):
    noise_folder(tmp_path)
    assert sorted(recorded_noises(tmp_path)) == ["fan", "rain", "tap"]
    for name in ("pink", "engine"):  # a built-in type, a training-only synthetic one
        (tmp_path / name).mkdir()
        sf.write(tmp_path / name / "p.wav", np.zeros(1600, np.float32), 16000)
        with pytest.raises(AudiovaeError, match="built-in"):
            recorded_noises(tmp_path)
        (tmp_path / name / "p.wav").unlink()
        (tmp_path / name).rmdir()


@pytest.fixture(scope="module")
def real_corpus(tmp_path_factory, speechocean) -> Path:
    """Real speakers (a tiny speechocean762) in pink noise, babble and three recorded types, ``tap`` test-only."""
    root = tmp_path_factory.mktemp("real_noisy")
    cfg = NoisyCorpusConfig(clean=str(speechocean), real_voice=False, noise_dir=str(noise_folder(root / "noise")),
                            test_only_recorded=("tap",), clean_fraction=0.3, snrs=(0.0, 10.0),
                            train_noises=("pink", "babble"), test_only_noises=(), mixtures_per_file=3,
                            test_files_per_speaker=3, test_mixtures_per_file=4)
    build_noisy_corpus(root / "c", cfg, progress=False)
    return root / "c"


def test_noisy_corpus_of_real_speakers_and_recorded_noise(real_corpus):
    """Test speakers and the test-only recorded type never reach training; clean mixtures are exact copies; the
    recorded types train on their first 75 % only."""
    entries = read_manifest(real_corpus / "manifest.jsonl")
    train = [e for e in entries if e.split == "train"]
    test = [e for e in entries if e.split == "test"]
    test_speakers = {SPEECHOCEAN_PREFIX + s for s, v in SPEAKERS.items() if v[2] == "test"}
    assert {e.speaker for e in test} == test_speakers and not test_speakers & {e.speaker for e in train}
    assert "tap" in {e.noise for e in test} and "tap" not in {e.noise for e in entries if e.split != "test"}
    assert {"rain", "fan", CLEAN} <= {e.noise for e in train}
    assert CLEAN not in {e.noise for e in test}
    for spk in test_speakers:
        assert len({Path(e.clean).stem.rsplit("_", 1)[0] for e in test if e.speaker == spk}) == 3
    for e in entries:
        noisy, sr = sf.read(real_corpus / e.path, dtype="float32")
        clean, _ = sf.read(real_corpus / e.clean, dtype="float32")
        assert sr == SR and e.sex in ("f", "m")
        if e.noise == CLEAN:
            assert e.snr is None and np.array_equal(noisy, clean)
        else:
            assert np.abs(noisy - clean).max() > 1e-3


def test_more_training_mixtures_leave_the_test_split_unchanged(tmp_path, speechocean):
    """The test split is drawn first: a corpus with more training mixtures per file, with its recorded training
    noises varied, or with a training-only noise type (synthetic or recorded), scores on the same mixtures. Varying
    changes the recorded-noise training mixtures and only them; a training-only type is heard in training and never
    in test."""
    noises = noise_folder(tmp_path / "noise")
    more = noise_folder(tmp_path / "more")  # the same folder and a recorded type more, heard in training only
    (more / "knock").mkdir()
    sf.write(more / "knock" / "k.flac", (0.3 * (np.arange(48000) % 4000 < 200)).astype(np.float32), 16000)
    tests, trains = [], []
    for per_file, vary, extra, pulse, folder in ((1, 0.0, (), 0.0, noises), (4, 0.0, (), 0.0, noises),
                                                 (1, 1.0, (), 0.0, noises), (2, 0.0, ("engine",), 0.0, noises),
                                                 (1, 0.0, (), 1.0, noises), (1, 0.0, (), 0.0, more)):
        cfg = NoisyCorpusConfig(clean=str(speechocean), real_voice=False, noise_dir=str(folder), snrs=(0.0, 10.0),
                                train_noises=("pink",), test_only_noises=(), mixtures_per_file=per_file,
                                vary_recorded=vary, train_only_noises=extra, pulse_recorded=pulse,
                                train_only_recorded=("knock",) if folder == more else ())
        out = tmp_path / f"c{per_file}_{vary}_{len(extra)}_{pulse}_{folder.name}"
        build_noisy_corpus(out, cfg, progress=False)
        entries = read_manifest(out / "manifest.jsonl")
        train = [e for e in entries if e.split == "train"]
        assert len(train) == per_file * len({e.clean.rsplit("_", 1)[0] for e in train})
        tests.append([(e.path, e.noise, e.snr, sf.read(out / e.path)[0].tobytes())
                      for e in entries if e.split == "test"])
        trains.append({e.path: (e.noise, sf.read(out / e.path)[0].tobytes()) for e in train})
    assert tests[0] == tests[1] == tests[2] == tests[3] == tests[4] == tests[5] and tests[0]
    assert "engine" in {noise for noise, _ in trains[3].values()}
    assert "engine" not in {noise for _, noise, _, _ in tests[3]}
    assert "knock" in {noise for noise, _ in trains[5].values()}
    plain, varied = trains[0], trains[2]
    assert plain.keys() == varied.keys()
    same = {path: plain[path] == varied[path] for path in plain}
    assert all(same[p] for p, (noise, _) in plain.items() if noise in ("pink", CLEAN))
    assert not any(same[p] for p, (noise, _) in plain.items() if noise in ("rain", "fan", "tap"))
    pulsed = trains[4]  # pulses change the recorded-noise training mixtures and only them, as varying does
    assert all(pulsed[p] == plain[p] for p, (noise, _) in plain.items() if noise in ("pink", CLEAN))
    assert not any(pulsed[p] == plain[p] for p, (noise, _) in plain.items() if noise in ("rain", "fan", "tap"))


def test_a_varied_noise_is_the_recording_faster_or_slower_under_a_tilt():
    """``vary_noise``: a 1 kHz tone played at speed f comes out at f kHz and 1/f as long; the tilt moves energy
    between low and high frequencies by the drawn slope, never creates any."""
    from audiovae.data.mixing import vary_noise

    sr = 16000
    tone = np.sin(2 * np.pi * 1000 * np.arange(sr) / sr).astype(np.float32)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        factor = float(np.exp(np.random.default_rng(seed).uniform(np.log(0.5), np.log(2.0))))
        out = vary_noise(tone, sr, rng)
        assert abs(out.size - sr / factor) <= 1
        peak = np.argmax(np.abs(np.fft.rfft(out))) * sr / out.size
        assert abs(peak - 1000 * factor) < 5, (peak, factor)
    flat = np.random.default_rng(0).standard_normal(sr).astype(np.float32)
    tilts = []
    for seed in range(20):
        spec = np.abs(np.fft.rfft(vary_noise(flat, sr, np.random.default_rng(seed), speed=(1.0, 1.0)))) ** 2
        f = np.fft.rfftfreq(sr, 1 / sr)
        tilts.append(10 * np.log10(spec[(f > 2000) & (f < 4000)].mean() / spec[(f > 250) & (f < 500)].mean()))
    assert max(tilts) > 6 and min(tilts) < -6 and max(np.abs(tilts)) < 3 * 4 + 1  # 3 octaves of at most 4 dB each


def test_pulsed_noise_comes_in_bursts_at_its_rate_each_a_fresh_stretch():
    """``pulse_gate``: steady noise comes out as bursts at the given rate (the frame energy's spectrum peaks there),
    the quietest frames at least 10 dB under the loudest. The output is the input under a slow gate in [floor, 1]
    (sample by sample: same sign, never louder, never below -40 dB of it), so each burst is that stretch of the input,
    not one waveform repeated."""
    from audiovae.data.mixing import pulse_gate

    sr = 16000
    noise = np.random.default_rng(0).standard_normal(8 * sr).astype(np.float32)
    for seed, rate in ((0, 3.0), (1, 7.0), (2, 13.0)):
        out = pulse_gate(noise, sr, np.random.default_rng(seed), rate=(rate, rate))
        assert out.shape == noise.shape and out.dtype == np.float32
        energy = np.square(out[: out.size // 80 * 80].reshape(-1, 80)).mean(1)  # 5-ms frames, 200 a second
        db = 10 * np.log10(energy + 1e-12)
        assert np.percentile(db, 99) - np.percentile(db, 1) > 10
        spec = np.abs(np.fft.rfft((energy - energy.mean()) * np.hanning(energy.size)))
        f = np.fft.rfftfreq(energy.size, 1 / 200)
        band = (f > 1.5) & (f < 20)
        assert abs(f[band][np.argmax(spec[band])] - rate) < 0.1 * rate
        seen = np.abs(noise) > 0.1
        gate = out[seen] / noise[seen]
        assert gate.min() >= 10 ** (-40 / 20) - 1e-6 and gate.max() <= 1 + 1e-6
        ratio = np.full(noise.size, np.nan)
        ratio[seen] = gate
        assert np.nanmax(np.abs(np.diff(ratio))) < 0.1  # slow: an attack takes 1 ms or more


def _comb_contrast(second: np.ndarray) -> tuple[float, float]:
    """The fundamental (15-170 Hz) whose first 6 harmonics hold the most log-energy in one second of audio at 16
    kHz, and the mean magnitude at those harmonics over the mean half-way between them."""
    spec = np.abs(np.fft.rfft(second * np.hanning(second.size)))  # 1 Hz bins
    cands = np.arange(15.0, 170.0, 0.25)
    k = np.arange(1, 7)
    f0 = cands[int(np.argmax([np.log(spec[(k * c).round().astype(int)] + 1e-9).sum() for c in cands]))]
    return f0, spec[(k * f0).round().astype(int)].mean() / spec[((k + 0.5) * f0).round().astype(int)].mean()


def test_engine_noise_is_harmonics_of_a_rotation_that_wanders():
    """``engine_noise``: unit RMS; its low spectrum is a harmonic series (a comb: peaks at multiples of one
    fundamental, well above the troughs between them, which pink noise never shows); its rotation drifts."""
    from audiovae.data.mixing import coloured_noise, engine_noise

    sr, drifts, combs = 16000, [], 0
    for seed in range(8):
        y = engine_noise(4 * sr, sr, np.random.default_rng(seed))
        assert y.dtype == np.float32 and np.isfinite(y).all() and abs(np.sqrt(np.mean(y ** 2)) - 1) < 1e-3
        (first, a), (last, b) = _comb_contrast(y[:sr]), _comb_contrast(y[-sr:])
        combs += int(a > 3) + int(b > 3)
        if a > 3 and b > 3:  # both seconds show the comb: their fundamentals measure the drift
            drifts.append(abs(np.log(last / first)))
        pink = coloured_noise(4 * sr, 1.0, np.random.default_rng(seed))
        assert _comb_contrast(pink[:sr])[1] < 3 and _comb_contrast(pink[-sr:])[1] < 3
    assert combs >= 6  # of 16 seconds (a loud broadband part or firing pulses hide the comb of some; pink: none)
    assert max(drifts) > 0.05  # the rotation moves within a clip...
    assert sorted(drifts)[len(drifts) // 2] < np.log(1.9)  # ...by at most -26...+35 % (an octave error would read 0.69)


def test_firing_pulses_repeat_at_their_rate():
    """``firing_pulses`` at 10 per second: the envelope's autocorrelation peaks at 100 ms and is strong there (the
    bursts repeat); at 20 per second, at 50 ms."""
    from audiovae.data.mixing import firing_pulses

    sr = 16000
    for rate, period in ((10.0, 0.1), (20.0, 0.05)):
        y = firing_pulses(3 * sr, sr, np.full(3 * sr, rate), np.random.default_rng(1))
        assert abs(np.sqrt(np.mean(y ** 2)) - 1) < 1e-6
        env = np.convolve(y ** 2, np.ones(80) / 80, mode="same")[::80]  # 5-ms frames
        env = env - env.mean()
        ac = np.correlate(env, env, mode="full")[env.size - 1:]
        lag = int(np.argmax(ac[int(0.6 * period * 200): int(1.4 * period * 200)])) + int(0.6 * period * 200)
        assert abs(lag / 200 - period) <= 0.01, (rate, lag / 200)
        assert ac[lag] > 0.3 * ac[0]  # a strong likeness of itself one period later


def test_corpus_noisy_cli_takes_speechocean_and_a_noise_folder(tmp_path, speechocean):
    noises = noise_folder(tmp_path / "noise")
    r = run_cli("corpus", "noisy", tmp_path / "c", "--clean", speechocean, "--no-real-voice", "--noise-dir", noises,
                "--test-only-noise", "tap", "--snrs", "5", "--test-files-per-speaker", "2", "--mixtures-per-file", "3",
                "--train-only-noise", "engine")
    assert r.returncode == 0, r.stderr
    entries = read_manifest(tmp_path / "c" / "manifest.jsonl")
    assert {e.noise for e in entries if e.split == "test"} >= {"tap"}
    train = [e for e in entries if e.split == "train"]
    assert len(train) == 3 * len({e.clean.rsplit("_", 1)[0] for e in train})  # three mixtures of each clean file
    r = run_cli("corpus", "noisy", tmp_path / "d", "--clean", speechocean, "--noise-dir", noises,
                "--test-only-noise", "drill")
    assert r.returncode != 0 and "drill" in r.stderr and "Traceback" not in r.stderr
    for folder in ([], ["--noise-dir", noises]):  # neither a synthetic family nor a folder of the noise folder
        r = run_cli("corpus", "noisy", tmp_path / "e", "--clean", speechocean, "--train-only-noise", "jet", *folder)
        assert r.returncode != 0 and "jet" in r.stderr and "engine" in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "e" / "manifest.jsonl").exists()


def test_evaluate_denoise_leads_with_unheard_speakers_in_unheard_noise(tmp_path, real_corpus):
    """The headline row holds only test speakers in the test-only recorded type at 0-10 dB; the clean pass sends
    each of their clean files through once, and a denoiser that changes nothing scores PESQ-wb 4.64 on it."""
    pytest.importorskip("pesq")
    import torch

    from audiovae.checkpoint import Checkpoint
    from audiovae.evaluation.denoise import HEADLINE, evaluate_denoise
    from audiovae.features import MelConfig
    from audiovae.models import build_model
    from audiovae.pipelines.denoise import Denoiser

    entries = discover(real_corpus)
    test = [e for e in entries if e.split == "test"]
    train_speakers = {e.speaker for e in entries if e.split == "train"}
    torch.manual_seed(0)
    model = build_model("vae", {"channels": (16, 16), "latent_dim": 4, "blocks": 1}).eval()
    untouched = Denoiser(Checkpoint(model, MelConfig(), task="denoise"), strength=0.0)
    report = evaluate_denoise(untouched, test, {e.noise for e in entries if e.split == "train"}, progress=False,
                              clean_pass=True, train_speakers=train_speakers)
    head = report.row(HEADLINE)
    expected = [e for e in test if e.noise == "tap" and 0 <= e.snr <= 10]
    assert head.n == len(expected) > 0 and report.unseen_noises == ["tap"]
    assert head.output == pytest.approx(head.noisy, abs=1e-3)  # strength 0: the output is the input
    assert report.clean_pass.n == len({e.clean for e in test}) and report.clean_pass.output["pesq"] > 4.6
    assert "clean speech in" in report.table()


def test_an_event_scene_scatters_its_events_at_their_rate_and_gains():
    """``event_scene``: events start about once per ``mean_gap`` (a 60-s scene at 0.5 s: about 120), each a copy of
    one of the clips at -20…0 dB, silence between them, the same scene for the same seed; loud overlapping events
    stay within full scale."""
    from audiovae.data.corpora.noise import event_scene

    sr = 16000
    click = np.hanning(160).astype(np.float32)  # 10-ms events: none overlap at gaps of 50 ms and more
    burst = -0.5 * np.hanning(160).astype(np.float32)  # another clip, of the other sign and half the peak
    scene = event_scene([click, burst], 60.0, sr, np.random.default_rng(0))
    assert scene.shape == (60 * sr,) and np.array_equal(scene, event_scene([click, burst], 60.0, sr,
                                                                           np.random.default_rng(0)))
    active = np.abs(scene) > 1e-6
    starts = np.flatnonzero(active[1:] & ~active[:-1]) + 1
    assert 90 <= len(starts) <= 150, len(starts)
    assert active.mean() < 0.1  # silence between the events
    peaks = np.array([scene[s: s + 160][np.abs(scene[s: s + 160]).argmax()] for s in starts[:-1]])
    clicks, bursts = peaks[peaks > 0], -2 * peaks[peaks < 0]  # each against its clip's own peak
    assert len(clicks) > 20 and len(bursts) > 20
    for level in (clicks, bursts):
        assert level.min() > 10 ** (-20.5 / 20) and level.max() <= 1.0 + 1e-6
    loud = event_scene([np.ones(8000, np.float32)], 5.0, sr, np.random.default_rng(1), mean_gap=0.05)
    assert np.abs(loud).max() <= 1.0 and np.abs(loud).max() > 0.99


def test_corpus_noise_gathers_catalogued_recordings_by_type(tmp_path):
    """A root holding one catalogued file of every package (made here: the packages are not needed) gives a noise
    folder with a type per catalogue type found, mono at the rate asked, and sources.csv naming package and
    licence; a root without them is a one-line error naming the packages and how to fetch them."""
    import csv

    from audiovae.data.corpora.noise import CATALOGUE, PACKAGES

    rng = np.random.default_rng(0)
    made = {}
    for source in CATALOGUE:
        if source.package in made:
            continue
        pattern = re.sub(r"\[(.)[^\]]*\]", r"\1", source.patterns[0]).replace("*", "x")  # a name the glob matches
        path = tmp_path / "root" / source.base / pattern
        path.parent.mkdir(parents=True, exist_ok=True)
        stereo = (0.1 * rng.standard_normal((2, 44100 // 2))).astype(np.float32)
        sf.write(path.with_suffix(".wav") if path.suffix == ".wav" else path, stereo.T, 44100,
                 format="OGG" if path.suffix == ".ogg" else "WAV", subtype="VORBIS" if path.suffix == ".ogg" else None)
        made[source.package] = (source.noise, path)
    assert set(made) == set(PACKAGES)
    r = run_cli("corpus", "noise", tmp_path / "noise", "--root", tmp_path / "root", "--sample-rate", "16000")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(tmp_path / "noise" / "sources.csv", encoding="utf-8")))
    assert len(rows) == len(made) and {row["package"] for row in rows} == set(PACKAGES)
    assert all(row["licence"] for row in rows)
    for noise, _ in made.values():
        files = list((tmp_path / "noise" / noise).glob("*.flac"))
        assert files and all(sf.info(f).channels == 1 and sf.info(f).samplerate == 16000 for f in files)
    r = run_cli("corpus", "noise", tmp_path / "none", "--root", tmp_path)
    assert r.returncode != 0 and "fetch_noise.sh" in r.stderr and "Traceback" not in r.stderr
    # --clatter: scenes of the short events (one of each events package here), every event file in sources.csv
    from audiovae.data.corpora.noise import EVENTS

    events = {}
    for source in EVENTS:
        if source.package in events:
            continue
        name = re.sub(r"\[(.)[^\]]*\]", r"\1", source.patterns[0]).replace("*", "x")
        path = tmp_path / "root" / source.base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.5 * np.hanning(4000)).astype(np.float32), 22050,
                 format="OGG" if path.suffix == ".ogg" else "WAV", subtype="VORBIS" if path.suffix == ".ogg" else None)
        events[source.package] = path
    r = run_cli("corpus", "noise", tmp_path / "clatter", "--root", tmp_path / "root", "--sample-rate", "16000",
                "--clatter", "2")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(tmp_path / "clatter" / "sources.csv", encoding="utf-8")))
    clatter = [row for row in rows if row["type"] == "clatter"]
    assert len(clatter) == len(events) and all(row["licence"] for row in clatter)
    assert len(rows) - len(clatter) == len(made)  # the catalogued types as without --clatter
    scenes = sorted((tmp_path / "clatter" / "clatter").glob("*.flac"))
    assert [f.name for f in scenes] == ["scene_00.flac", "scene_01.flac"]
    for f in scenes:
        y, sr = sf.read(f)
        assert sr == 16000 and len(y) == 30 * sr and np.abs(y).max() > 0.05
    assert not np.array_equal(sf.read(scenes[0])[0], sf.read(scenes[1])[0])

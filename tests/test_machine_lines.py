"""Machine lines: a fine line spectrum read against a machine's own lines finds new lines at orders of its rotation
and lines a speed change smears away, while the lines of a factory's engines (another frequency in every clip) pass;
envelope lines find a worn bearing's impact train under a factory's louder bangs; the component travels in a
detector's checkpoint (one written before envelope lines still loads) and adds to its clip score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiovae.errors import ConfigError
from audiovae.machine_lines import GRID_HZ, LinesConfig, MachineLines, envelope_spectrum, line_scores, line_spectrum

SR = 8000


def _clip(seed: int, rotation: float = 25.0, half_orders: float = 0.0, drift: float = 0.0, seconds: float = 4.0
          ) -> np.ndarray:
    """A rotating machine (8 harmonics of ``rotation`` and a 7-blade line, speed wandering 0.3 %) under a factory
    engine (harmonics of 20-40 Hz, a new speed in every clip, as loud as the machine) and white noise.
    ``half_orders``: lines at 0.5x, 1.5x and 2.5x the rotation, this far below the machine in dB (0: none);
    ``drift``: the speed rises by this fraction over the clip."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    speed = rotation * (1 + 0.003 * np.cumsum(rng.standard_normal(n)) / np.sqrt(n) + drift * t / t[-1])
    phase = 2 * np.pi * np.cumsum(speed) / SR
    machine = sum(0.8 ** k * np.sin((k + 1) * phase + rng.uniform(0, 6.3)) for k in range(8))
    machine = machine + np.sin(7 * phase) + 0.5 * np.sin(14 * phase)
    machine /= np.sqrt(np.mean(machine ** 2))
    f0 = rng.uniform(20, 40)
    engine = sum(0.8 ** k * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 6.3)) for k in range(20))
    y = machine + engine / np.sqrt(np.mean(engine ** 2)) + 0.5 * rng.standard_normal(n)
    if half_orders:
        y += sum(10 ** (-half_orders / 20) * np.sqrt(2) * np.sin(k * phase) for k in (0.5, 1.5, 2.5))
    return (0.05 * y).astype(np.float32)


@pytest.fixture(scope="module")
def lines() -> MachineLines:
    return MachineLines.fit([_clip(seed) for seed in range(10)], SR)


def test_line_spectrum_finds_a_line_over_noise_at_its_frequency():
    rng = np.random.default_rng(0)
    t = np.arange(4 * SR) / SR
    noise = rng.standard_normal(t.size)
    spec = line_spectrum(noise + 0.1 * np.sin(2 * np.pi * 123.4 * t), SR)
    cfg = LinesConfig()
    assert spec.shape == (cfg.bins,) and spec.min() >= 0
    assert abs(cfg.f_lo + spec.argmax() * GRID_HZ - 123.4) <= GRID_HZ
    assert spec.max() > 15  # a line 23 dB below the noise's power: about 19 dB above its floor at this resolution
    assert np.percentile(line_spectrum(noise, SR), 99) < 10  # noise alone: no lines
    with pytest.raises(ConfigError, match="1000"):
        line_spectrum(noise, 1600)


def _auc(normal: list[float], faulty: list[float]) -> float:
    from audiovae.metrics import auc_pair

    return auc_pair([0] * len(normal) + [1] * len(faulty), [*normal, *faulty])[0]


def test_new_lines_at_half_orders_stand_out_and_engines_do_not(lines):
    normal = [lines.raw(_clip(100 + s), SR)["new"] for s in range(12)]
    faulty = [lines.raw(_clip(200 + s, half_orders=26.0), SR)["new"] for s in range(12)]
    assert _auc(normal, faulty) > 0.85  # measured 0.90; an engine's lines near an order are what remains
    assert sum(lines.score(_clip(200 + s, half_orders=26.0), SR) > 0 for s in range(12)) >= 9
    # normal: nothing to add from the line spectrum for most (0 for 3 in 4 of the fitted clips)
    assert sum(lines.parts(_clip(100 + s), SR)["new"] == 0 for s in range(12)) >= 8


def test_a_speed_drift_loses_the_machines_lines(lines):
    normal = [lines.raw(_clip(300 + s), SR)["lost"] for s in range(12)]
    drifting = [lines.raw(_clip(300 + s, drift=0.05), SR)["lost"] for s in range(12)]  # the same, 5 % faster at the end
    assert _auc(normal, drifting) > 0.85  # measured 0.92
    assert np.median(normal) < 0.5 < 10 < np.median(drifting)


def test_leave_one_out_and_too_few_clips():
    refs = np.stack([line_spectrum(_clip(s), SR) for s in range(5)])
    left_out = line_scores(refs[0], refs, exclude=0)  # how fit calibrates: each clip against the others only
    assert left_out == line_scores(refs[0], refs[1:])
    with pytest.raises(ConfigError, match="at least 3"):
        MachineLines.fit([_clip(0), _clip(1)], SR)


def test_lines_travel_in_a_detector_checkpoint_and_add_to_its_score(lines, tmp_path):
    from audiovae.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from audiovae.features import MelConfig
    from audiovae.models import build_model
    from audiovae.pipelines.anomaly import Detector, DetectorSettings

    mel = MelConfig(sample_rate=SR, n_fft=256, hop_length=128, win_length=256, n_mels=32, f_max=4000.0)
    model = build_model("vae", {"n_mels": 32, "latent_dim": 4, "channels": (16, 16), "blocks": 1}).eval()
    settings = DetectorSettings(score="nelbo", threshold=0.0, lines=2.0)
    ckpt = Checkpoint(model, mel, task="anomaly", info={"anomaly": settings.to_dict()},
                      components={"lines": lines})
    path = save_checkpoint(tmp_path / "det.safetensors", ckpt)
    back = load_checkpoint(path)
    assert torch.equal(back.components["lines"].spectra, lines.spectra)
    assert back.components["lines"].calibration == lines.calibration
    assert back.summary()["machine lines"].startswith("line spectra of 10 normal clips")
    faulty = torch.from_numpy(_clip(400, half_orders=20.0))
    with_lines, without = Detector(back), Detector(back, lines=0.0)
    gap = with_lines.score(faulty).score - without.score(faulty).score
    assert gap == pytest.approx(2.0 * lines.score(faulty.numpy(), SR), rel=1e-5) and gap > 0
    with pytest.raises(ConfigError, match="machine-lines weight"):
        DetectorSettings(lines=-1.0)


def test_a_long_clip_is_read_to_its_end():
    """A 10-s clip whose last 2 s hold a line: the 8-s windows reach the end (the last one ends with the clip)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal(10 * SR)
    t = np.arange(2 * SR) / SR
    x[-2 * SR:] += 0.5 * np.sin(2 * np.pi * 300.0 * t)
    spec = line_spectrum(x, SR)
    assert abs(LinesConfig().f_lo + spec.argmax() * GRID_HZ - 300.0) <= 2 * GRID_HZ and spec.max() > 12


def test_lines_a_bin_apart_are_shared_at_low_frequencies():
    """Below about 21 Hz 0.6 % is less than a bin: a neighbour's line one bin away is still the same line."""
    from audiovae.machine_lines import _shared

    cfg = LinesConfig()
    assert list(_shared(np.array([18.0, 18.0, 200.0]), [np.array([18.125, 50.0, 201.0])], cfg)) == [1, 1, 1]
    assert list(_shared(np.array([18.0, 200.0]), [np.array([18.5, 202.0])], cfg)) == [0, 0]
    with pytest.raises(ConfigError, match="below f_lo"):
        LinesConfig(f_lo=10.0, min_rotation=12.0)


def test_loaded_spectra_replace_the_cached_lines_and_a_file_needs_its_calibration():
    a = MachineLines.fit([_clip(s) for s in range(4)], SR)
    b = MachineLines.fit([_clip(s, rotation=31.0) for s in range(50, 54)], SR)
    probe = _clip(60, rotation=31.0, half_orders=20.0)
    a.raw(probe, SR)  # fills a's cache of its clips' lines
    a.load_state_dict(b.state_dict())
    ra, rb = a.raw(probe, SR), b.raw(probe, SR)
    assert all(np.array_equal(ra[k], rb[k]) for k in ("new", "lost", "envelope", "bursts"))
    with pytest.raises(ConfigError, match="calibration"):
        MachineLines.build("machine_lines", {"config": LinesConfig().to_dict(), "clips": 4})


def test_fit_adds_machine_lines_only_when_they_score_better(monkeypatch, tmp_path):
    """`_try_lines` either way: no more than a tolerance worse on the choice's figures, the detector takes the lines'
    weight and a threshold from the held-out clips' scores with the lines; worse, nothing changes."""
    import soundfile as sf

    from audiovae.checkpoint import Checkpoint
    from audiovae.data.manifest import Entry
    from audiovae.features import MelConfig
    from audiovae.models import build_model
    from audiovae.pipelines.anomaly import Detector, DetectorSettings
    from audiovae.training import anomaly as fit

    paths = []
    for s in range(8):
        paths.append(tmp_path / f"clip_{s}.wav")
        sf.write(paths[-1], _clip(s), SR)
    train_set = [Entry(path=str(p), duration=4.0) for p in paths[:5]]
    held = [Entry(path=str(p), duration=4.0) for p in paths[5:]]
    mel = MelConfig(sample_rate=SR, n_fft=256, hop_length=128, win_length=256, n_mels=32, f_max=4000.0)
    torch.manual_seed(0)
    model = build_model("vae", {"n_mels": 32, "latent_dim": 4, "channels": (16, 16), "blocks": 1}).eval()
    detector = Detector(Checkpoint(model, mel, task="anomaly"), score="nelbo")
    normal = np.array([detector.score_file(e.path).score for e in held])
    for auc in (0.6, 0.695, 0.8):  # lower by more than the tolerance; within it; higher
        settings = DetectorSettings(score="nelbo", threshold=123.0, config="anomaly_vae")
        selection = {"anomaly_vae": {"auc": 0.7}}
        monkeypatch.setattr(fit, "_choice_figures", lambda *a, auc=auc, **k: {"auc": auc})
        lines = fit._try_lines(detector, normal, train_set, held, [], {"tone": []}, selection, settings, False)
        assert selection[fit.lines_name("anomaly_vae")]["auc"] == auc
        if auc < 0.7 - fit.LINES_TOLERANCE:
            assert lines is None and settings.lines == 0 and settings.threshold == 123.0
            continue
        assert lines.spectra.shape[0] == 5 and settings.lines == pytest.approx(0.5 * normal.std())
        with_lines = Detector(Checkpoint(model, mel, task="anomaly", components={"lines": lines}),
                              **settings.to_dict())
        fused = [with_lines.score_file(e.path).score for e in held]
        assert settings.threshold == pytest.approx(np.percentile(fused, settings.percentile))
        assert settings.normal["clips"] == 3
    with pytest.raises(ConfigError, match="carries no machine lines"):
        Detector(Checkpoint(model, mel, task="anomaly"), lines=1.0)


def _rings(n: int, rate: float, freq: float, amp: float, rng: np.random.Generator, decay: float = 0.002
           ) -> np.ndarray:
    """Impacts ``rate`` times a second (the rate off by about 0.3 %, as a machine's speed wanders), each a damped ring
    of ``freq``: a bearing's, at its defect rate."""
    y = np.zeros(n)
    kernel_t = np.arange(int(8 * decay * SR)) / SR
    kernel = np.exp(-kernel_t / decay) * np.sin(2 * np.pi * freq * kernel_t)
    for at in np.arange(rng.uniform(0, 1 / rate), n / SR, 1 / rate) * (1 + 0.003 * rng.standard_normal()):
        s = int(at * SR)
        m = min(kernel.size, n - s)
        if m > 0:
            y[s: s + m] += amp * rng.uniform(0.7, 1.3) * kernel[:m]
    return y


def _bearing(seed: int, wear: float = 0.0) -> np.ndarray:
    """:func:`_clip`'s machine with ball-pass impacts (3.3x the rotation) ringing at 2.5 kHz, under a factory's loud
    broadband bangs (a new period in every clip); ``wear``: impacts at 1.6 times the ball-pass rate, this loud
    against the ball-pass ones (0.5: 6 dB below them)."""
    rng = np.random.default_rng(seed)
    y = _clip(seed).astype(np.float64)
    n = y.size
    y += _rings(n, 3.3 * 25.0, 2500.0, 0.08, rng)
    if wear:
        y += _rings(n, 1.6 * 3.3 * 25.0, 2500.0 * rng.uniform(0.95, 1.05), 0.08 * wear, rng)
    bangs = np.zeros(n)
    decay = np.exp(-np.arange(int(0.05 * SR)) / (0.008 * SR))
    period = int(rng.uniform(0.25, 0.8) * SR)
    for s in range(int(rng.integers(0, period)), n, period):
        m = min(decay.size, n - s)
        bangs[s: s + m] += 0.4 * rng.standard_normal(m) * decay[:m]
    return (y + bangs).astype(np.float32)


def test_envelope_spectrum_shows_an_impact_train_in_its_band_and_not_a_factorys_bangs():
    rng = np.random.default_rng(1)
    n = 4 * SR
    noise = 0.05 * rng.standard_normal(n)
    cfg = LinesConfig().for_rate(SR)
    assert [b for b in cfg.bands] == [(1000, 2000), (1500, 2500), (2000, 3000), (2500, 3500), (3000, 4000)]
    spec = envelope_spectrum(noise + _rings(n, 87.0, 3200.0, 0.2, rng), SR, cfg)
    assert spec.shape == (5, cfg.env_bins) and spec.min() >= 0
    band = 3  # 2.5-3.5 kHz holds the 3.2-kHz ring
    assert abs(cfg.env_f_lo + spec[band].argmax() / cfg.env_segment - 87.0) <= 1.0
    assert spec[band].max() > 15
    quiet = envelope_spectrum(noise, SR, cfg)
    assert np.percentile(quiet, 99) < 10  # noise alone: no envelope lines
    with pytest.raises(ConfigError, match="envelope bands"):
        envelope_spectrum(noise, SR, LinesConfig())  # 8 kHz audio does not reach the default 8-kHz top
    n_long = 150 * SR  # read in three parts of 50 s: an impact train in the last 40 s still shows
    long = 0.05 * rng.standard_normal(n_long)
    long[-40 * SR:] += _rings(40 * SR, 87.0, 3200.0, 0.2, rng)
    spec = envelope_spectrum(long, SR, cfg)
    assert abs(cfg.env_f_lo + spec[band].argmax() / cfg.env_segment - 87.0) <= 1.0 and spec[band].max() > 10


@pytest.fixture(scope="module")
def bearing_lines() -> MachineLines:
    return MachineLines.fit([_bearing(400 + s) for s in range(10)], SR)


def test_envelope_lines_find_a_worn_bearing_under_factory_bangs(bearing_lines):
    assert bearing_lines.envelopes.shape == (10, 5, bearing_lines.config.env_bins)
    normal = [bearing_lines.parts(_bearing(500 + s), SR)["envelope"] for s in range(12)]
    worn = [bearing_lines.parts(_bearing(600 + s, wear=0.5), SR)["envelope"] for s in range(12)]
    assert _auc(normal, worn) > 0.85
    assert sum(x == 0 for x in normal) >= 6  # nothing added for most normal clips
    plain = MachineLines.fit([_bearing(400 + s) for s in range(10)], SR, LinesConfig(envelope=False, bursts=False))
    assert _auc([plain.score(_bearing(500 + s), SR) for s in range(12)],
                [plain.score(_bearing(600 + s, wear=0.5), SR) for s in range(12)]) < 0.75  # line spectra miss it


def _clicks(n: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """3-8 clicks at random moments, each a 3-ms ring of its own frequency (1.2-3.5 kHz), ``level`` at its peak."""
    y = np.zeros(n)
    t = np.arange(int(0.024 * SR)) / SR
    for at in rng.integers(0, n - t.size, int(rng.integers(3, 9))):
        y[at: at + t.size] += level * np.exp(-t / 0.003) * np.sin(2 * np.pi * rng.uniform(1200, 3500) * t)
    return y


def test_a_burst_in_one_band_stands_out_and_a_bang_in_all_does_not():
    from audiovae.machine_lines import burst_profile

    rng = np.random.default_rng(3)
    n = 4 * SR
    noise = 0.05 * rng.standard_normal(n)
    cfg = LinesConfig().for_rate(SR)
    assert cfg.bursts and cfg.burst_hi == SR / 2
    quiet = burst_profile(noise, SR, cfg)
    assert quiet.shape == (cfg.burst_bands,) and quiet.max() < 10  # 7-9 dB: narrow bands of noise, by chance
    bang = noise.copy()
    bang[SR: SR + 400] += rng.standard_normal(400)  # 26 dB over the noise in every band at once
    assert burst_profile(bang, SR, cfg).max() < 10  # as without it
    click = noise.copy()
    click[SR: SR + 200] += 0.5 * np.sin(2 * np.pi * 2000 * np.arange(200) / SR) * np.exp(-np.arange(200) / 24)
    edges = np.geomspace(cfg.burst_lo, cfg.burst_hi, cfg.burst_bands + 1)
    profile = burst_profile(click, SR, cfg)
    assert edges[profile.argmax()] <= 2000 < edges[profile.argmax() + 1] and profile.max() > 12  # 14 dB


def test_bursts_find_clicks_under_factory_bangs(bearing_lines):
    rng = np.random.default_rng(9)
    normal = [bearing_lines.parts(_bearing(500 + s), SR)["bursts"] for s in range(12)]
    clicking = [bearing_lines.parts(_bearing(700 + s) + _clicks(4 * SR, rng, 0.1), SR)["bursts"] for s in range(12)]
    assert _auc(normal, clicking) > 0.9
    assert sum(x == 0 for x in normal) >= 6


def test_a_shorter_normal_clip_does_not_read_as_new_envelope_lines():
    lines = MachineLines.fit([_clip(800 + s, seconds=8.0) for s in range(8)], SR)
    short = [lines.parts(_clip(900 + s, seconds=2.0), SR)["envelope"] for s in range(10)]
    assert sum(x == 0 for x in short) >= 6  # 2-s clips: 3 windows against 15, their noisier spectra allowed for


def test_one_neighbour_of_another_unit_does_not_make_a_clips_own_lines_new():
    # two clips of a 25-Hz unit and eight of a 31-Hz one: a third clip of the first unit has one neighbour of the
    # other among its three nearest, which holds none of its lines; against the weakest neighbour every line of the
    # clip reads as new, against their median none does, and lines at half orders still do
    fitted = [_clip(s) for s in range(2)] + [_clip(10 + s, rotation=31.0) for s in range(8)]
    median = MachineLines.fit(fitted, SR, LinesConfig(envelope=False, bursts=False))
    weakest = MachineLines.fit(fitted, SR, LinesConfig(envelope=False, bursts=False, reference="weakest"))
    own = [_clip(40 + s) for s in range(6)]
    against_weakest = [weakest.raw(c, SR)["new"] for c in own]  # its 2x...6x lines, where one neighbour has none
    against_median = [median.raw(c, SR)["new"] for c in own]
    assert min(against_weakest) > 60 and max(against_median) < min(against_weakest)  # measured 86-124 and 0-28
    assert np.median(against_median) < 10  # measured 3.5: an engine's line near an order now and then
    loose = [_clip(50 + s, half_orders=26.0) for s in range(6)]
    assert _auc([median.raw(c, SR)["new"] for c in own], [median.raw(c, SR)["new"] for c in loose]) > 0.9
    with pytest.raises(ConfigError, match="reference"):
        LinesConfig(reference="mean")


def test_envelope_lines_one_neighbour_lacks_count_against_the_median_not_the_weakest():
    from audiovae.machine_lines import envelope_scores

    cfg = LinesConfig().for_rate(SR)
    rng = np.random.default_rng(5)
    floor = rng.uniform(0, 2, (4, len(cfg.bands), cfg.env_bins)).astype(np.float32)  # what noise leaves
    spec, refs = floor[0].copy(), floor[1:].copy()
    spec[2, 100] = refs[0, 2, 100] = refs[1, 2, 100] = 30.0  # a line in band 2 that two of three neighbours share
    median = envelope_scores(spec, refs, cfg)
    weakest = envelope_scores(spec, refs, LinesConfig(reference="weakest").for_rate(SR))
    assert median.shape == weakest.shape == (len(cfg.bands),)
    assert median[2] == 0 and weakest[2] > 20  # 30 dB over the third neighbour's floor, less the 3-dB margin
    spec[3, 200] = 30.0  # a line no neighbour has: new either way
    assert envelope_scores(spec, refs, cfg)[3] > 20


def test_a_detector_file_from_before_envelope_lines_and_bursts_still_loads_and_scores():
    old = MachineLines.fit([_clip(s) for s in range(4)], SR, LinesConfig(envelope=False, bursts=False))
    settings = old.settings()
    settings["config"] = {k: v for k, v in settings["config"].items() if not k.startswith(("env", "burst"))}
    back = MachineLines.build("machine_lines", settings)
    assert not back.config.envelope and not back.config.bursts and back.config.bands == []
    back.load_state_dict({"spectra": old.spectra})  # neither envelope spectra nor bursts in the file
    probe = _clip(70, half_orders=20.0)
    assert back.score(probe, SR) == pytest.approx(old.score(probe, SR)) and set(back.parts(probe, SR)) == {
        "new", "lost"}
    settings["config"]["envelope"] = True  # a file that says it has envelope lines must carry their calibration
    with pytest.raises(ConfigError, match="envelope_q75"):
        MachineLines.build("machine_lines", settings)
    with_env = MachineLines.fit([_clip(s) for s in range(4)], SR, LinesConfig(bursts=False))  # envelope, no bursts
    settings = with_env.settings()
    settings["config"] = {k: v for k, v in settings["config"].items() if not k.startswith("burst")}
    back = MachineLines.build("machine_lines", settings)
    back.load_state_dict({"spectra": with_env.spectra, "envelopes": with_env.envelopes})
    assert back.score(probe, SR) == pytest.approx(with_env.score(probe, SR))
    del settings["calibration"]["envelope_windows"]  # the first files with envelope lines: taken as 8-s clips
    assert MachineLines.build("machine_lines", settings).calibration["envelope_windows"] == 15
    weakest = MachineLines.fit([_clip(s) for s in range(4)], SR, LinesConfig(reference="weakest"))
    settings = weakest.settings()  # files from before the neighbours' median: read against the weakest, as fitted
    del settings["config"]["reference"]
    back = MachineLines.build("machine_lines", settings)
    back.load_state_dict(weakest.state_dict())
    assert back.config.reference == "weakest" and back.score(probe, SR) == pytest.approx(weakest.score(probe, SR))


def test_bursts_read_a_clip_to_its_end_and_audio_must_be_finite():
    from audiovae.machine_lines import burst_profile

    rng = np.random.default_rng(4)
    cfg = LinesConfig().for_rate(SR)
    ring = 0.5 * np.sin(2 * np.pi * 2000 * np.arange(100) / SR) * np.exp(-np.arange(100) / 24)
    for length in (4 * SR, 4 * SR + 37):  # whole frames, and a tail shorter than a hop
        clip = 0.05 * rng.standard_normal(length)
        clip[-100:] += ring  # a click in the last 12.5 ms
        assert burst_profile(clip, SR, cfg).max() > 12
    bad = 0.05 * rng.standard_normal(SR)
    bad[100] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        burst_profile(bad, SR, cfg)

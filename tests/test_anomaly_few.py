"""The few-clip regime of anomaly detection: the corpus's rotation faults, the injected faults that choose a detector
without anomalous recordings, the training budget that follows the data, and `anomaly fit --clips` end to end on a
tiny corpus built here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import fan_corpus, run_cli

from audiovae.data.corpora.machines import MachineCorpusConfig, _unit, build_machine_corpus, machine_sound
from audiovae.data.manifest import Entry, read_manifest
from audiovae.errors import ConfigError
from audiovae.training.anomaly import LINES_TOLERANCE, lines_name
from audiovae.training.config import load_run_config
from audiovae.training.faults import FAULTS, inject, strongest_line

SR = 16000


def _power_at(y: np.ndarray, freq: float, width: float = 1.0) -> float:
    """Power within ``width`` Hz of ``freq``, at 0.25 Hz resolution."""
    n = 4 * y.size
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size), n)) ** 2
    f = np.fft.rfftfreq(n, 1 / SR)
    return float(spec[np.abs(f - freq) <= width].sum())


def _with_and_without(machine: str, unit: dict, anomaly: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The same 4-s clip of ``machine`` healthy and with ``anomaly`` (one seed: only the fault differs)."""
    calm = machine_sound(machine, unit, 4 * SR, SR, np.random.default_rng(seed))
    return calm, machine_sound(machine, unit, 4 * SR, SR, np.random.default_rng(seed), anomaly)


def test_looseness_adds_half_orders_and_harmonics_of_the_rotation():
    u = _unit("pump", 0, 0)
    calm, loose = _with_and_without("pump", u, "looseness", 5)
    added = loose - calm
    assert np.sqrt(np.mean(added ** 2)) < 0.5  # faint: well below the machine's own unit RMS
    f_rot = u["f_rot"]
    for order in (0.5, 1.5):  # no line of a healthy pump sits at a half order
        assert _power_at(loose, order * f_rot) > 10 * _power_at(calm, order * f_rot), order


def test_wear_adds_impacts_at_the_bearing_resonance_loudest_once_per_turn():
    u = _unit("bearing", 1, 0)
    n = 4 * SR
    calm, worn = _with_and_without("bearing", u, "wear", 6)
    added = worn - calm
    spec = np.abs(np.fft.rfft(added))
    f = np.fft.rfftfreq(n, 1 / SR)
    assert abs(f[np.argmax(spec)] / u["resonance"] - 1) < 0.15  # rings the bearing's own resonance
    envelope = np.abs(added)  # impacts at ~1.5x the ball-pass rate, modulated at the rotation rate
    env_spec = np.abs(np.fft.rfft(envelope - envelope.mean()))
    rate = 1.5 * u["ball_ratio"] * u["f_rot"]
    band = (f > 0.8 * rate) & (f < 1.2 * rate)
    assert env_spec[band].max() > 5 * np.median(env_spec[(f > 5) & (f < 2 * rate)])


def test_earlier_clips_are_rendered_as_before_and_rotation_faults_are_test_only(tmp_path):
    cfg = MachineCorpusConfig(machines=("fan",), units=1, seconds=1.0, snrs=(6.0,), train=3, valid_normal=1,
                              valid_per_anomaly=1, test_normal=1, test_per_anomaly=1, workers=1)
    build_machine_corpus(tmp_path, cfg, progress=False)
    entries = read_manifest(tmp_path / "manifest.jsonl")
    later = [e for e in entries if e.anomaly in ("looseness", "wear")]
    assert len(later) == 2 and all(e.split == "test" for e in later)
    from audiovae.data.corpora.machines import SEEN_ANOMALIES, _plan

    plan = _plan(cfg)  # the earlier plan's clips, in the earlier formula: its order, kinds and seeds
    earlier = (["" for _ in range(3)] + [""] + list(SEEN_ANOMALIES) + [""]
               + ["drift", "click", "imbalance", "rub", "leak"])
    assert [c.anomaly for c in plan[:len(earlier)]] == earlier
    assert [c.seed for c in plan[:len(earlier)]] == list(range(len(earlier)))  # seed 0 * 1_000_003 + position
    # the earlier plan's clips keep their names, indices and seeds: the last is still index 12 (3+1+3+1+5 clips)
    assert max(int(e.path[-8:-4]) for e in entries if e not in later) == 12
    assert sorted(int(e.path[-8:-4]) for e in later) == [13, 14]


@pytest.mark.parametrize("kind", FAULTS)
def test_injected_faults_are_faint_and_change_what_they_say(kind):
    u = _unit("fan", 0, 0)
    x = (0.1 * machine_sound("fan", u, 2 * SR, SR, np.random.default_rng(1))).astype(np.float32)
    rng = np.random.default_rng(0)
    y = inject(x, SR, kind, rng)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    if kind == "speed":  # faster and shorter by the same factor
        assert 0.93 < y.size / x.size < 0.99
        assert abs(strongest_line(y, SR) / strongest_line(x, SR) * y.size / x.size - 1) < 0.01
        return
    assert y.size == x.size and not np.allclose(x, y)
    change = np.sqrt(np.mean((y - x) ** 2)) / np.sqrt(np.mean(x ** 2))
    assert change < (3.0 if kind == "impacts" else 0.3), change  # never louder than the clip (impacts: brief)
    if kind == "tone":
        line = strongest_line(x, SR)
        added = [_power_at(y - x, k * line) for k in (0.5, 1.5, 2.5)]  # two of the three half orders, nothing else
        assert sorted(added)[-2] > 0.9 * float(np.sum(np.abs(np.fft.rfft((y - x) * np.hanning(x.size), 4 * x.size))
                                                      ** 2)) / 2
    with pytest.raises(ConfigError, match="unknown injected fault"):
        inject(x, SR, "meteor", rng)


def test_budget_follows_the_data():
    from audiovae.training.anomaly import MIN_STEPS, budget_steps

    cfg = load_run_config("anomaly_vae", [])
    assert budget_steps(cfg, 13 * 4.0) == MIN_STEPS
    assert budget_steps(cfg, 50 * 10.0) == round(100 * 500 / (32 * 2.048))
    assert budget_steps(cfg, 480 * 4.0) == 2930  # the recipe's 480 clips: about its former 3,000 steps
    assert budget_steps(cfg, 10_000 * 4.0) == cfg.train.steps


def test_few_clips_span_units_and_noise_levels():
    from audiovae.training.anomaly import few_clips

    entries = [Entry(path=f"{u}_{snr}_{i}.wav", duration=4.0, unit=u, snr=snr)
               for u in ("id_00", "id_02", "id_04") for snr in (-6.0, 6.0) for i in range(10)]
    picked = few_clips(entries, 13)
    assert len(picked) == len({e.path for e in picked}) == 13
    counts = [sum(e.unit == u and e.snr == s for e in picked) for u in ("id_00", "id_02", "id_04") for s in (-6, 6)]
    assert min(counts) == 2 and max(counts) == 3
    assert [e.path for e in few_clips(entries, 13)] == [e.path for e in picked]  # seeded
    copies = [Entry(path=f"{snr:g}dB/fan/id_00/normal/train_{i:04d}.wav", duration=4.0, machine="fan", unit="id_00",
                    snr=snr) for snr in (-6.0, 0.0, 6.0) for i in range(5)]  # 5 recordings, each at 3 SNRs
    picked = few_clips(copies, 5)
    assert sorted(e.path[-8:] for e in picked) == [f"{i:04d}.wav" for i in range(5)]  # never a copy twice
    assert len({e.snr for e in picked}) == 3 and len(few_clips(copies, 9)) == 5


@pytest.fixture(scope="module")
def few_corpus(tmp_path_factory) -> Path:
    """Fans, two units, 2-s clips at one SNR: 6 normal training clips per unit, a few anomalies in valid and test."""
    return fan_corpus(tmp_path_factory.mktemp("few"), train=6, valid_normal=2, test_normal=4, test_per_anomaly=1)


def test_fit_on_a_few_clips_chooses_on_injected_faults(few_corpus, tmp_path):
    from audiovae.checkpoint import load_checkpoint
    from audiovae.pipelines.anomaly import DetectorSettings

    out = tmp_path / "fan.safetensors"
    r = run_cli("anomaly", "fit", few_corpus, "--clips", "9", "-o", out, "train.steps=20",
                "data.segment_frames=16", "data.cache_dir=null", "--device", "cpu", timeout=900)
    assert r.returncode == 0, r.stderr
    ckpt = load_checkpoint(out)
    s = DetectorSettings.of(ckpt)
    configs = {"anomaly_vae", "anomaly_vae_fine"}
    assert set(s.selection) == configs | {lines_name(s.config)} and r.stdout.count("<- kept") == 1
    for figures in s.selection.values():  # no anomalous clip of the corpus was used: only injected faults
        assert set(figures["faults"]) == set(FAULTS) and 0 <= figures["auc"] <= 1
        assert figures["normal"] == 4 and figures["anomalous"] == 4 * 2 * len(FAULTS)
    assert s.config in configs and s.selection[s.config]["auc"] == max(s.selection[n]["auc"] for n in configs)
    assert s.chosen.startswith(s.config) and "injected" in s.chosen and "with machine lines" in s.chosen
    added = s.selection[lines_name(s.config)]["auc"] >= s.selection[s.config]["auc"] - LINES_TOLERANCE
    assert (s.lines > 0) == added == ("lines" in ckpt.components) == ("machine lines added" in r.stdout)
    if added:  # the lines of all 9 clips, as the refitted model heard them
        assert ckpt.components["lines"].spectra.shape[0] == 9
    trained = read_manifest(tmp_path / "fan_run" / "normal.jsonl")
    assert len(trained) == 9 and {e.unit for e in trained} == {"id_00", "id_02"}
    assert all(e.label == "" and "valid_" not in e.path for e in trained)  # training clips only, unlabelled
    assert s.normal["refit_clips"] == 9 and s.normal["clips"] == 4  # kept config trained again on all 9
    refit = read_manifest(tmp_path / "fan_run" / "refit.jsonl")
    assert sorted(e.path for e in refit) == sorted(e.path for e in trained) and {e.split for e in refit} == {"train"}
    assert (tmp_path / "fan_run" / "refit" / "model.safetensors").is_file()
    r = run_cli("anomaly", "fit", few_corpus, "--clips", "3", "-o", tmp_path / "few.safetensors")
    assert r.returncode == 1 and "--clips 3" in r.stderr and "at least 5" in r.stderr


def test_one_detector_per_unit_scores_its_own_clips(few_corpus, tmp_path):
    """`--unit`: a detector per machine; evaluation scores each unit's clips with its own and averages the units."""
    from audiovae.checkpoint import load_checkpoint
    from audiovae.pipelines.anomaly import DetectorSettings

    models = []
    for unit in ("id_00", "id_02"):
        out = tmp_path / f"fan_{unit}.safetensors"
        r = run_cli("anomaly", "fit", few_corpus, "--unit", unit, "--clips", "6", "--config", "anomaly_vae", "-o",
                    out, "train.steps=20", "data.segment_frames=16", "data.cache_dir=null", "--device", "cpu",
                    timeout=900)
        assert r.returncode == 0, r.stderr
        assert f"unit {unit}" in r.stdout
        assert DetectorSettings.of(load_checkpoint(out)).unit == unit
        trained = read_manifest(tmp_path / f"fan_{unit}_run" / "normal.jsonl")
        assert len(trained) == 6 and {e.unit for e in trained} == {unit}
        models += ["--model", out]
    report = tmp_path / "eval.json"
    r = run_cli("evaluate", "anomaly", *models, "--data", few_corpus, "--json", report, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    rows = {row["group"]: row["vae"]["auc"] for row in json.loads(report.read_text())["rows"]
            if row["machine"] == "fan"}
    assert rows["mean of units"] == pytest.approx((rows["id_00"] + rows["id_02"]) / 2)
    r = run_cli("anomaly", "fit", few_corpus, "--unit", "id_09", "-o", tmp_path / "x.safetensors")
    assert r.returncode == 1 and "id_09" in r.stderr and "Traceback" not in r.stderr

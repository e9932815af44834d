"""Anomalous sound detection: the machine corpus, the MIMII/DCASE layouts, the DCASE baseline model, frame scores,
pooling and thresholds, and `audiovae anomaly fit/score` + `audiovae evaluate anomaly` end to end on a tiny corpus."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import fan_corpus, run_cli, sine

from audiovae.data.corpora.machines import (
    ANOMALIES,
    TEST_ONLY_ANOMALIES,
    MachineCorpusConfig,
    _unit,
    build_machine_corpus,
    machine_sound,
)
from audiovae.data.layouts import detect_layout, discover
from audiovae.data.manifest import read_manifest
from audiovae.errors import ConfigError
from audiovae.evaluation.anomaly import auc_pair
from audiovae.models import build_model
from audiovae.pipelines.anomaly import DetectorSettings, check_pooling, pool, threshold_at

SR = 16000


def band_energy(y: np.ndarray, lo: float, hi: float, sr: int = SR) -> float:
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(y.size, 1 / sr)
    return float(spec[(f >= lo) & (f < hi)].sum() / spec.sum())


# --- the corpus ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    """Fans only, two units, 2-s clips at one SNR: 12 normal training clips per unit, anomalies in valid/test."""
    return fan_corpus(tmp_path_factory.mktemp("machines"), train=12, valid_normal=4, test_normal=8,
                      test_per_anomaly=2)


def test_corpus_layout_labels_and_splits(tiny_corpus):
    entries = read_manifest(tiny_corpus / "manifest.jsonl")
    assert len(entries) == 2 * (12 + 4 + 3 + 8 + 2 * len(ANOMALIES))
    assert {e.machine for e in entries} == {"fan"} and {e.unit for e in entries} == {"id_00", "id_02"}
    train = [e for e in entries if e.split == "train"]
    assert train and all(e.label == "normal" and not e.anomaly for e in train)
    valid_types = {e.anomaly for e in entries if e.split == "valid" and e.anomaly}
    test_types = {e.anomaly for e in entries if e.split == "test" and e.anomaly}
    assert test_types == set(ANOMALIES) and not valid_types & set(TEST_ONLY_ANOMALIES) and valid_types
    for e in entries:  # the MIMII tree: <snr>/<machine>/<unit>/{normal,abnormal}/
        parts = Path(e.path).parts
        assert parts[:3] == ("6dB", "fan", e.unit) and parts[3] == ("normal" if e.label == "normal" else "abnormal")
        assert (tiny_corpus / e.path).is_file()
    wave, sr = sf.read(tiny_corpus / entries[0].path)
    assert sr == SR and wave.shape == (2 * SR,) and 0.02 < np.sqrt(np.mean(wave ** 2)) < 0.3


def test_corpus_is_deterministic(tiny_corpus, tmp_path):
    fan_corpus(tmp_path, train=12, valid_normal=4, test_normal=8, test_per_anomaly=2, workers=2)
    assert (tmp_path / "manifest.jsonl").read_bytes() == (tiny_corpus / "manifest.jsonl").read_bytes()
    for name in ("6dB/fan/id_02/abnormal/test_leak_0035.wav", "6dB/fan/id_00/normal/train_0003.wav"):
        assert (tmp_path / name).read_bytes() == (tiny_corpus / name).read_bytes()


def test_mixing_at_each_snr_keeps_the_clip(tmp_path):
    """One clip at two SNRs: the same machine sound, only the noise level differs (so -6 dB is noisier)."""
    cfg = MachineCorpusConfig(machines=("pump",), units=1, seconds=1.0, snrs=(-6.0, 6.0), train=1, valid_normal=0,
                              valid_per_anomaly=0, test_normal=0, test_per_anomaly=0, workers=1)
    build_machine_corpus(tmp_path, cfg, progress=False)
    lo, _ = sf.read(tmp_path / "-6dB/pump/id_00/normal/train_0000.wav")
    hi, _ = sf.read(tmp_path / "6dB/pump/id_00/normal/train_0000.wav")
    assert lo.shape == hi.shape and not np.allclose(lo, hi)
    assert abs(np.corrcoef(lo, hi)[0, 1]) > 0.3  # the shared machine sound


def test_machine_units_differ_and_anomalies_do_what_they_say():
    n = 2 * SR
    normal = machine_sound("fan", _unit("fan", 0, 0), n, SR, np.random.default_rng(1))
    other_unit = machine_sound("fan", _unit("fan", 1, 0), n, SR, np.random.default_rng(1))
    assert np.sqrt(np.mean(normal ** 2)) == pytest.approx(1.0, rel=1e-3)
    assert abs(np.corrcoef(normal, other_unit)[0, 1]) < 0.5
    leak = machine_sound("fan", _unit("fan", 0, 0), n, SR, np.random.default_rng(1), "leak")
    assert band_energy(leak, 6500, 7500) > 5 * band_energy(normal, 6500, 7500)  # the fan's own noise stops at 6 kHz
    click = machine_sound("bearing", _unit("bearing", 0, 0), n, SR, np.random.default_rng(2), "click")
    calm = machine_sound("bearing", _unit("bearing", 0, 0), n, SR, np.random.default_rng(2))
    impacts = click - calm  # the same clip otherwise: what the anomaly added is loud and brief
    assert np.abs(impacts).max() > 1.0 and np.mean(np.abs(impacts) > 0.05) < 0.2
    def blade_pass(y: np.ndarray) -> float:  # the strongest tone of a fan (its blade-pass frequency), 0.1 Hz bins
        spec = np.abs(np.fft.rfft(y * np.hanning(y.size), 10 * y.size))
        f = np.fft.rfftfreq(10 * y.size, 1 / SR)
        band = (f > 80) & (f < 400)
        return float(f[band][np.argmax(spec[band])])

    u, long = _unit("fan", 2, 0), 4 * SR
    for anomaly, low, high in (("", 0.0, 0.01), ("drift", 0.02, 0.1)):  # drift: 3-8 % by the end of the clip
        y = machine_sound("fan", u, long, SR, np.random.default_rng(3), anomaly)
        change = abs(blade_pass(y[-SR:]) / blade_pass(y[:SR]) - 1)
        assert low <= change < high, (anomaly, change)
    with pytest.raises(Exception, match="unknown anomaly"):
        machine_sound("fan", _unit("fan", 0, 0), n, SR, np.random.default_rng(1), "explosion")


# --- layouts ------------------------------------------------------------------------------------------------------

def _tone(path: Path, freq: float = 300.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, sine(freq, 0.5, SR), SR)


def test_mimii_layout(tmp_path):
    root = tmp_path / "mimii"
    for snr in ("-6_dB_fan", "6_dB_fan"):
        for unit in ("id_00", "id_02"):
            for i in range(10):
                _tone(root / snr / "fan" / unit / "normal" / f"{i:08d}.wav")
            for i in range(3):
                _tone(root / snr / "fan" / unit / "abnormal" / f"{i:08d}.wav", 900.0)
    assert detect_layout(root) == "mimii"
    entries = discover(root)
    assert len(entries) == 2 * 2 * 13 and {e.snr for e in entries} == {-6.0, 6.0}
    assert {e.unit for e in entries} == {"id_00", "id_02"} and {e.machine for e in entries} == {"fan"}
    assert all(e.split == "test" for e in entries if e.label == "anomaly")
    for snr in (-6.0, 6.0):  # the MIMII baseline's protocol: as many normal test clips as anomalous ones
        group = [e for e in entries if e.snr == snr and e.unit == "id_00"]
        assert sum(e.label == "normal" and e.split == "test" for e in group) == 3
        assert sum(e.split == "train" for e in group) >= 5 and all(e.label == "normal" for e in group
                                                                   if e.split != "test")
    assert discover(root) == entries  # deterministic, and the same wherever the data lies
    shutil.copytree(root, tmp_path / "moved")
    assert [(Path(e.path).relative_to(tmp_path / "moved"), e.split) for e in discover(tmp_path / "moved")] == [
        (Path(e.path).relative_to(root), e.split) for e in entries]


def test_dcase_layout(tmp_path):
    for i in range(10):
        _tone(tmp_path / "pump" / "train" / f"normal_id_0{i % 2}_{i:08d}.wav")
    _tone(tmp_path / "pump" / "test" / "normal_id_00_00000000.wav")
    _tone(tmp_path / "pump" / "test" / "anomaly_id_01_00000001.wav", 900.0)
    _tone(tmp_path / "valve" / "train" / "section_00_source_train_normal_0000_a.wav")
    _tone(tmp_path / "valve" / "test" / "section_00_source_test_anomaly_0000_a.wav")
    assert detect_layout(tmp_path) == "dcase"
    entries = discover(tmp_path)
    pump = [e for e in entries if e.machine == "pump"]
    assert len(pump) == 12 and {e.unit for e in pump} == {"id_00", "id_01"}
    test = sorted((e.label, e.unit) for e in pump if e.split == "test")
    assert test == [("anomaly", "id_01"), ("normal", "id_00")]
    assert all(e.label == "normal" for e in pump if e.split != "test")
    assert any(e.split == "valid" for e in pump)
    valve = sorted((e.split, e.label, e.unit) for e in entries if e.machine == "valve")
    assert valve == [("test", "anomaly", "section_00"), ("valid", "normal", "section_00")]


# --- pooling, thresholds, metrics ---------------------------------------------------------------------------------

def test_pooling_and_threshold():
    frames = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    assert pool(frames, "mean") == pytest.approx(4.0)
    assert pool(frames, "max") == 10.0
    assert pool(frames, "p50") == pytest.approx(3.0)
    for bad in ("median", "p0", "p100", "p", "max2"):
        with pytest.raises(ConfigError, match="pooling"):
            check_pooling(bad)
    scores = np.arange(1, 101, dtype=float)
    t = threshold_at(scores, 90)
    assert 90 <= t <= 91 and (scores > t).sum() == 10
    with pytest.raises(ConfigError, match="no held-out"):
        threshold_at([], 90)
    with pytest.raises(ConfigError, match="score"):
        DetectorSettings(score="likelihood")


def test_auc_pair():
    assert auc_pair([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == (1.0, 1.0)
    auc, pauc = auc_pair([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1])
    assert auc == 0.0 and pauc < 0.5
    assert all(np.isnan(auc_pair([0, 0], [0.1, 0.2])))


# --- models -------------------------------------------------------------------------------------------------------

def test_dense_ae_windows_and_overfit():
    torch.manual_seed(0)
    model = build_model("dense_ae", {"n_mels": 16, "hidden": 32, "layers": 2, "latent_dim": 4})
    mel = torch.randn(4, 16, 30)
    w = model.windows(mel)
    assert w.shape == (4, 16 * 5, 30)
    centre = w.reshape(4, 16, 5, 30)[:, :, 2]
    assert torch.equal(centre, mel)  # identity normalisation: the window's middle frame is the frame itself
    assert model.encode(mel).mode().shape == (4, 4, 30) and model.decode(model.encode(mel).mode()).shape == mel.shape
    # frames drawn from 3 spectral templates: a code of 4 per frame can hold them
    sounds = torch.einsum("bkt,km->bmt", torch.rand(4, 3, 30), torch.randn(3, 16))
    batch = {"mel": sounds, "length": torch.tensor([30, 30, 20, 30])}
    model.eval()
    first = float(model.loss(batch, 0).losses["model"].detach())
    model.train()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for step in range(300):
        opt.zero_grad()
        model.loss(batch, step).losses["model"].backward()
        opt.step()
    model.eval()
    assert float(model.loss(batch, 300).losses["model"].detach()) < 0.3 * first
    assert model.frame_scores(mel).shape == (4, 30)
    with pytest.raises(ConfigError, match="recon"):
        model.frame_scores(mel, "nelbo")
    with pytest.raises(ConfigError, match="no prior"):
        model.sample(1, 10)


def test_vae_frame_scores():
    torch.manual_seed(0)
    model = build_model("vae", {"n_mels": 16, "channels": [16, 16], "factors": [2, 2], "latent_dim": 4}).eval()
    mel = torch.randn(2, 16, 37)
    recon, nelbo = model.frame_scores(mel, "recon"), model.frame_scores(mel, "nelbo")
    assert recon.shape == nelbo.shape == (2, 37) and (recon >= 0).all()
    # the negative ELBO is half the summed squared error plus a non-negative KL share
    assert (nelbo >= 0.5 * 16 * recon - 1e-4).all()
    with pytest.raises(ConfigError, match="recon"):
        model.frame_scores(mel, "likelihood")


def test_nelbo_weighs_bands_by_their_learnt_scale():
    """With recon=nll, a band the model learnt to be noisy (large scale) counts less in the nelbo score."""
    torch.manual_seed(0)
    model = build_model("vae", {"n_mels": 8, "channels": [8], "factors": [2], "latent_dim": 2, "recon": "nll"}).eval()
    mel = torch.randn(1, 8, 12)
    base = model.frame_scores(mel, "nelbo")
    with torch.no_grad():
        model.logscale[3] = np.log(10.0)  # band 3: ten times the spread
    loose = model.frame_scores(mel, "nelbo")
    x, y = model.normalize(mel), model.normalize(model.reconstruct(mel))
    err3 = (y - x)[0, 3].square()
    expected = base - 0.5 * err3 + 0.5 * (err3 / 100 + 2 * np.log(10.0))
    assert torch.allclose(loose, expected, atol=1e-4)


# --- fit, score, evaluate -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def detector(tiny_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("detector") / "fan.safetensors"
    r = run_cli("anomaly", "fit", tiny_corpus, "-o", out, "--config", "anomaly_vae", "train.steps=200",
                "train.valid_every=100",
                "train.checkpoint_every=100", f"data.cache_dir={out.parent / 'cache'}", "--device", "cpu",
                timeout=900)  # about 15 s alone; generous for a machine shared with other work
    assert r.returncode == 0, r.stderr
    assert "threshold" in r.stdout and "machine type fan" in r.stdout
    return out


def test_fit_trains_on_normal_clips_only(detector, tiny_corpus):
    from audiovae.checkpoint import load_checkpoint

    trained = read_manifest(detector.with_name("fan_run") / "normal.jsonl")
    assert trained and all(e.label == "normal" for e in trained)
    assert {e.split for e in trained} == {"train", "valid"}
    held = [e for e in trained if e.split == "valid"]
    assert len(held) == 8  # the corpus's own normal valid clips: 4 per unit
    ckpt = load_checkpoint(detector)
    s = DetectorSettings.of(ckpt)
    assert ckpt.task == "anomaly" and s.machine == "fan" and s.percentile == 90.0 and s.normal["clips"] == 8
    assert s.threshold > 0


def test_anomalies_score_higher(detector, tiny_corpus, tmp_path):
    out = tmp_path / "eval.json"
    r = run_cli("evaluate", "anomaly", "--model", detector, "--data", tiny_corpus, "--json", out, "--roc",
                tmp_path / "roc.png", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "rub (test-only)" in r.stdout and "leak (test-only)" in r.stdout and "F1" in r.stdout
    report = json.loads(out.read_text())
    rows = {(row["machine"], row["group"]): row["vae"] for row in report["rows"]}
    assert rows[("fan", "all")]["auc"] > 0.75  # far above chance (0.5) after 200 steps on 24 normal clips
    assert rows[("fan", "leak (test-only)")]["auc"] > 0.9
    assert (tmp_path / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = run_cli("evaluate", "anomaly", "--model", detector, "--data", tmp_path / "nowhere")
    assert r.returncode == 1 and "nowhere" in r.stderr and "Traceback" not in r.stderr


def test_score_folder_with_bad_files(detector, tiny_corpus, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("6dB/fan/id_00/normal/test_0019.wav", "6dB/fan/id_00/abnormal/test_leak_0035.wav"):
        (clips / Path(name).name).write_bytes((tiny_corpus / name).read_bytes())
    (clips / "notes.wav").write_text("not audio")
    (clips / "empty.wav").write_bytes(b"")
    r = run_cli("anomaly", "score", clips, "--model", detector, "--csv", tmp_path / "s.csv", "--plot",
                tmp_path / "plots", "--device", "cpu")
    assert r.returncode == 1
    assert r.stderr.count("audiovae: skipped") == 2 and "Traceback" not in r.stderr
    assert "scored 2 of 4 files" in r.stdout
    rows = {Path(row["file"]).name: row for row in csv.DictReader((tmp_path / "s.csv").open())}
    assert set(rows) == {"test_0019.wav", "test_leak_0035.wav"}
    assert float(rows["test_leak_0035.wav"]["score"]) > float(rows["test_0019.wav"]["score"])
    assert rows["test_leak_0035.wav"]["anomalous"] == "1"
    assert 0 <= float(rows["test_0019.wav"]["peak_seconds"]) <= 2.0
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["test_0019_anomaly.png", "test_leak_0035_anomaly.png"]


def test_score_errors_are_one_line(detector, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    r = run_cli("anomaly", "score", bad, "--model", detector)
    assert r.returncode == 1 and r.stderr.startswith("audiovae: error:") and "bad.wav" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run_cli("anomaly", "score", bad, "--model", detector, "--pooling", "median")
    assert r.returncode == 1 and "pooling" in r.stderr and "Traceback" not in r.stderr


def test_fit_keeps_the_config_with_the_best_valid_auc(tiny_corpus, tmp_path):
    """Two front ends fitted; the kept one has the higher AUC on the valid split, recomputed here from its run."""
    from audiovae.checkpoint import load_checkpoint
    from audiovae.pipelines.anomaly import Detector

    out = tmp_path / "fan.safetensors"
    r = run_cli("anomaly", "fit", tiny_corpus, "-o", out, "--config", "anomaly_vae", "--config", "anomaly_vae_fine",
                "train.steps=30", f"data.cache_dir={tmp_path / 'cache'}", "--device", "cpu", timeout=900)
    assert r.returncode == 0, r.stderr
    s = DetectorSettings.of(load_checkpoint(out))
    assert set(s.selection) == {"anomaly_vae", "anomaly_vae_fine"} and r.stdout.count("<- kept") == 1
    assert s.config == max(s.selection, key=lambda n: (s.selection[n]["auc"], s.selection[n]["pauc"]))
    assert f"{s.config}: valid AUC" in r.stdout and "<- kept" in r.stdout.split(f"{s.config}: valid AUC")[1]
    valid = [e for e in discover(tiny_corpus) if e.split == "valid"]
    assert s.selection["anomaly_vae"]["anomalous"] == sum(e.label == "anomaly" for e in valid) > 0
    for name, figures in s.selection.items():
        run = load_checkpoint(tmp_path / "fan_run" / name / "model.safetensors")
        d = Detector(run, score="nelbo", pooling="mean")
        scores = [d.score_file(e.path).score for e in valid]
        assert auc_pair([int(e.label == "anomaly") for e in valid], scores)[0] == pytest.approx(figures["auc"])
    assert load_checkpoint(out).mel.hop_length == (256 if s.config == "anomaly_vae_fine" else 512)


def test_fit_refuses_mixed_machine_types_and_too_few_clips(tmp_path):
    cfg = MachineCorpusConfig(machines=("fan", "pump"), units=1, seconds=1.0, snrs=(6.0,), train=2,
                              valid_normal=0, valid_per_anomaly=0, test_normal=0, test_per_anomaly=0, workers=1)
    build_machine_corpus(tmp_path / "c", cfg, progress=False)
    r = run_cli("anomaly", "fit", tmp_path / "c", "-o", tmp_path / "d.safetensors")
    assert r.returncode == 1 and "--machine" in r.stderr and "fan, pump" in r.stderr
    r = run_cli("anomaly", "fit", tmp_path / "c", "--machine", "pump", "-o", tmp_path / "d.safetensors")
    assert r.returncode == 1 and "at least" in r.stderr
    r = run_cli("anomaly", "fit", tmp_path / "c", "--machine", "valve", "-o", tmp_path / "d.safetensors")
    assert r.returncode == 1 and "valve" in r.stderr
    assert not (tmp_path / "d.safetensors").exists()


def test_fit_on_a_plain_folder_of_recordings(tmp_path):
    """A user's folder of healthy-machine recordings (no labels, no splits): some are held out for the threshold."""
    from audiovae.checkpoint import load_checkpoint

    folder = tmp_path / "healthy_fan"
    folder.mkdir()
    for i in range(12):
        y = machine_sound("fan", _unit("fan", 0, 0), SR, SR, np.random.default_rng(i))
        sf.write(folder / f"rec_{i:02d}.flac", (0.1 * y).astype(np.float32), SR)
    out = tmp_path / "fan.safetensors"
    r = run_cli("anomaly", "fit", folder, "-o", out, "--config", "anomaly_vae", "--no-lines", "train.steps=20",
                "data.cache_dir=null", "data.segment_frames=16", "--percentile", "75", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "75th percentile of 4 held-out normal clips" in r.stdout
    trained = read_manifest(tmp_path / "fan_run" / "normal.jsonl")
    assert sorted(e.split for e in trained).count("valid") == 4 and len(trained) == 12
    r = run_cli("anomaly", "score", folder / "rec_00.flac", "--model", out)
    assert r.returncode == 0 and "rec_00.flac" in r.stdout and "scored 1 of 1 files" in r.stdout
    ckpt = load_checkpoint(out)  # one config and --no-lines: no choice to make, no lines
    assert DetectorSettings.of(ckpt).selection == {} and DetectorSettings.of(ckpt).lines == 0
    assert "lines" not in ckpt.components

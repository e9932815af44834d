"""Voice conversion in real voices: a voice corpus split from a recorded multi-speaker dataset (a tiny
speechocean762 tree built here; the project never needs the corpus itself), the evaluation without parallel text
(in-table and one-shot into whole unheard speakers, DNSMOS beside the recordings' own), and the export's table of
real voices (`audiovae speakers --json`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SR, chirp, run_cli, run_export, write
from test_convert import tiny_cvae
from test_real_speech import SENTENCES, speechocean_tree

from audiovae.checkpoint import load_checkpoint, save_checkpoint
from audiovae.data.corpora.voices import VoiceCorpusConfig, unheard_speakers, voice_entries
from audiovae.data.layouts import discover
from audiovae.data.manifest import read_manifest
from audiovae.errors import ConfigError
from audiovae.evaluation.vc_unpaired import is_parallel
from audiovae.pitch import Register

MORE = SENTENCES + ["GLUE THE SHEET TO THE DARK BLUE BACKGROUND", "THESE DAYS A CHICKEN LEG IS A RARE DISH",
                    "RICE IS OFTEN SERVED IN ROUND BOWLS"]  # seven utterances per speaker
TABLE = ["so762_0036", "so762_0482", "so762_1027"]  # the release's train speakers (0120 and 0024 are its test)


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> Path:
    """A voice corpus over the tiny release: one unheard speaker per sex, 2 test and 1 valid utterance per table
    speaker."""
    root = tmp_path_factory.mktemp("voices")
    source = speechocean_tree(root / "speechocean762", sentences=MORE)
    r = run_cli("corpus", "voices", root / "voices", "--source", source, "--unheard-per-sex", "1",
                "--test-per-speaker", "2", "--valid-per-speaker", "1")
    assert r.returncode == 0, r.stderr
    return root / "voices"


def test_voice_corpus_holds_out_utterances_of_table_speakers_and_whole_unheard_speakers(voices):
    entries = read_manifest(voices / "manifest.jsonl")
    assert unheard_speakers(entries) == ["so762_0024", "so762_0120"]  # the release's test speakers, one per sex
    for speaker in TABLE:
        splits = sorted(e.split for e in entries if e.speaker == speaker)
        assert splits == ["test"] * 2 + ["train"] * 4 + ["valid"]
    assert all(Path(e.path).is_absolute() and Path(e.path).is_file() for e in entries)  # no audio copied
    assert {e.sex for e in entries if e.speaker == "so762_0120"} == {"f"}
    assert not is_parallel(discover(voices))  # table speakers hold out different utterances
    source = voices.parent / "speechocean762"
    again = voice_entries(VoiceCorpusConfig(str(source), unheard_per_sex=1, test_per_speaker=2))
    assert [(e.speaker, e.split) for e in sorted(again, key=lambda e: e.path)] == \
        [(e.speaker, e.split) for e in sorted(entries, key=lambda e: e.path)]  # the same split on every build
    with pytest.raises(ConfigError, match="fewer than two speakers with enough recordings"):
        voice_entries(VoiceCorpusConfig(str(source), unheard_per_sex=1, test_per_speaker=5))
    r = run_cli("corpus", "voices", voices.parent / "x", "--source", voices.parent / "nowhere")
    assert r.returncode == 1 and "nowhere: no such file or folder" in r.stderr and "Traceback" not in r.stderr


def _model(tmp_path: Path) -> Path:
    ckpt = tiny_cvae()
    ckpt.speakers = list(TABLE)
    return save_checkpoint(tmp_path / "table.safetensors", ckpt)


def test_evaluate_vc_on_real_speakers_without_parallel_text(voices, tmp_path):
    pytest.importorskip("resemblyzer")
    pytest.importorskip("speechmos")
    model = _model(tmp_path)
    r = run_cli("evaluate", "vc", "--model", model, "--data", voices, "--voices", "3", "--sentences", "1",
                "--json", tmp_path / "vc.json")
    assert r.returncode == 0, r.stderr
    assert "6 ordered pairs of 3 table voices" in r.stdout and "MCD dB" not in r.stdout and "DNSMOS OVRL" in r.stdout
    report = json.loads((tmp_path / "vc.json").read_text())
    assert report["table_size"] == 3 and report["pairs"] == 6 and report["voices"] == TABLE
    floor, ceiling, converted = report["floor"], report["ceiling"], report["converted"]
    assert converted["mcd_db"] is None  # strict JSON: nothing parallel to align with
    # unconverted, a recording sounds like its own speaker (espeak's voices are close: not every pair)
    assert floor["sim_source"] > floor["sim_target"] + 0.05 and floor["closer_to_target"] < 0.5, r.stdout
    assert ceiling["closer_to_target"] == 1.0 and ceiling["speaker_id_accuracy"] == 1.0
    for row in (floor, ceiling, converted):
        assert 1.0 <= row["dnsmos_ovrl"] <= 5.0 and 1.0 <= row["dnsmos_p808"] <= 5.0
    r = run_cli("evaluate", "vc", "--model", model, "--data", voices, "--sentences", "3", "--no-dnsmos")
    assert r.returncode == 1 and "0 of the model's speakers have 3 held-out" in r.stderr


def test_evaluate_one_shot_into_unheard_real_speakers(voices, tmp_path):
    pytest.importorskip("resemblyzer")
    model = _model(tmp_path)
    r = run_cli("evaluate", "vc", "--model", model, "--data", voices, "--one-shot", "--method", "fit,encoder",
                "--sources", "2", "--sentences", "1", "--reference-seconds", "3", "--no-dnsmos", "--json",
                tmp_path / "one_shot.json")
    assert r.returncode == 0, r.stderr
    assert all(row in r.stdout for row in ("one-shot fit", "one-shot encoder", "nearest", "ceiling", "floor"))
    assert "DNSMOS" not in r.stdout and "in-table" not in r.stdout
    report = json.loads((tmp_path / "one_shot.json").read_text())
    assert report["targets"] == ["so762_0024", "so762_0120"] and report["sources"] == [TABLE[0], TABLE[2]]
    assert all(report["nearest"][t] in TABLE for t in report["targets"])  # the nearest of the whole table
    assert all(s >= 3.0 for s in report["reference_seconds"].values())
    floor = report["floor"]
    assert floor["sim_source"] > floor["sim_target"] + 0.05 and floor["closer_to_target"] < 0.5, r.stdout
    assert report["ceiling"]["closer_to_target"] == 1.0 and report["one_shot"]["fit"]["mcd_db"] is None
    r = run_cli("evaluate", "vc", "--model", model, "--data", voices, "--one-shot", "--reference-seconds", "30")
    assert r.returncode == 1 and "so762_0024: 7 recordings; one-shot evaluation needs 30 s" in r.stderr
    r = run_cli("evaluate", "vc", "--model", model, "--data", voices, "--one-shot", "--skip", "1")
    assert r.returncode == 1 and "--skip applies to a parallel test set" in r.stderr


def test_dnsmos_judges_speech_above_noise(voices):
    """The naturalness judge itself: a real-speech recording scores above white noise of the same loudness."""
    pytest.importorskip("resemblyzer")
    pytest.importorskip("speechmos")
    from audiovae.evaluation.vc import _Judge

    judge = _Judge(tiny_cvae())
    speech = judge.load(next(e.path for e in read_manifest(voices / "manifest.jsonl")))
    noise = torch.from_numpy(np.random.default_rng(0).standard_normal(speech.numel()).astype(np.float32))
    noise *= speech.pow(2).mean().sqrt() / noise.pow(2).mean().sqrt()
    said, hiss = judge.naturalness(speech, key="s"), judge.naturalness(noise)
    assert said["ovrl"] > hiss["ovrl"] + 0.5 and said["p808"] > hiss["p808"]
    assert judge.naturalness(noise, key="s") == said  # a keyed recording is scored once


def test_export_letters_featured_real_voices_and_speakers_json(voices, tmp_path):
    """recipes/export.py --letters --featured on real speakers: letters for a sex- and register-spread few, corpus
    names for the rest; every row says corpus, speaker id, sex and median F0; `speakers --json` gives the table."""
    ckpt = tiny_cvae()
    ckpt.speakers = list(TABLE)
    run = save_checkpoint(tmp_path / "model.safetensors", ckpt)
    out = tmp_path / "bundled.safetensors"
    p = run_export(run, "--letters", "--featured", "2", "--data", voices, "-o", out, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    half = load_checkpoint(out)
    assert half.info["trained_speakers"] == TABLE
    # 0036 is the one woman: one letter each, men first; the other man keeps his corpus name
    assert sorted(half.speakers) == ["A", "B", "so762_1027"] or sorted(half.speakers) == ["A", "B", "so762_0482"]
    lettered = dict(zip(half.speakers, TABLE, strict=True))
    assert lettered["B"] == "so762_0036" and half.info["voices"]["B"]["sex"] == "female"
    r = run_cli("speakers", "--model", out, "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["name"] for row in rows] == half.speakers
    for row, name in zip(rows, TABLE, strict=True):
        assert row["voice"] == name and row["corpus"] == "speechocean762"
        assert row["speaker_id"] == name.removeprefix("so762_") and row["sex"] in ("female", "male")
        assert 50.0 < row["median_f0_hz"] < 400.0
    text = run_cli("speakers", "--model", out).stdout
    assert "speechocean762 speaker 0036" in text
    src = write(tmp_path / "src.wav", chirp(1.0), SR)
    for speaker in ("B", "so762_0036", "so762_0482"):  # letters, and the corpus names, all convert
        r = run_cli("convert", src, "--speaker", speaker, "--model", out, "-o", tmp_path / "o.wav")
        assert r.returncode == 0, r.stderr


def test_featured_voices_spread_over_sex_and_register():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes"))
    from export import featured

    names = [f"v{i}" for i in range(10)]
    sex = {n: "f" if i < 6 else "m" for i, n in enumerate(names)}
    pitch = {n: Register(np.log(100.0 + 20 * i), 0.1, np.log(100.0 + 20 * i)).to_list() for i, n in enumerate(names)}
    assert featured(names, sex, pitch, 4) == ["v6", "v9", "v0", "v5"]  # men first; lowest and highest of each
    assert featured(names, sex, pitch, 3) == ["v8", "v0", "v5"]  # the larger group gets the odd one; one: the middle
    assert featured(names, {}, pitch, 2) == ["v0", "v9"]  # no sex known: spread over all

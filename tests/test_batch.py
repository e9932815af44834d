"""Batch jobs as a library call: naming, destinations checked before any work, bad files skipped and listed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import SR, chirp, write

from audiovae import audio
from audiovae.errors import AudiovaeError, ConfigError
from audiovae.fileio import OutputError
from audiovae.pipelines.batch import Job, map_files, output_name, plan
from audiovae.pipelines.latent import join


class Copier:
    """A pipeline stand-in: load at the model rate, save; remembers what it was asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, Path]] = []

    def __call__(self, src: Path, dst: Path) -> str:
        self.calls.append((src, dst))
        wave, sr = audio.load(src, SR)
        audio.save(dst, wave, sr)
        return f"{wave.numel()} samples"


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    write(root / "a.wav", chirp(0.5), SR)
    write(root / "sub" / "b.flac", chirp(0.3, sr=16000), 16000)
    write(root / "sub" / "deeper" / "c.ogg", chirp(0.4), SR)
    (root / "sub" / "bad.wav").write_text("not audio")
    (root / "notes.txt").write_text("not an audio file: not an input")
    return root


def test_a_bad_file_is_listed_and_the_others_written(folder, tmp_path):
    work, seen = Copier(), []
    summary = map_files(folder, work, output_name("x"), out_dir=tmp_path / "out",
                        on_file=lambda o, done, total: seen.append((o.job.source.name, o.ok, done, total)))
    assert [(o.job.source.name, o.job.output.name) for o in summary.ok] == [("a.wav", "a_x.wav"), ("b.flac", "b_x.wav"),
                                                                           ("c.ogg", "c_x.wav")]
    assert [o.job.source for o in summary.failed] == [folder / "sub" / "bad.wav"]
    assert "bad.wav: not a readable audio file" in summary.failed[0].note
    assert not (tmp_path / "out" / "sub" / "bad_x.wav").exists()
    assert summary.ok[0].note == f"{SR // 2} samples" and sf.info(tmp_path / "out" / "a_x.wav").frames == SR // 2
    assert seen == [("a.wav", True, 1, 4), ("b.flac", True, 2, 4), ("bad.wav", False, 3, 4), ("c.ogg", True, 4, 4)]
    assert summary.out_dir == tmp_path / "out" and summary.line("copied") == f"copied 3 of 4 files into {tmp_path}/out"


def test_nested_folders_keep_their_layout_and_formats_are_kept_or_made_wav(folder, tmp_path):
    jobs, out = plan(folder, output_name("dn", keep_format=True), out_dir=tmp_path / "out")
    assert out == tmp_path / "out"
    assert {j.source.relative_to(folder).as_posix(): j.output.relative_to(out).as_posix() for j in jobs} == {
        "a.wav": "a_dn.wav", "sub/b.flac": "sub/b_dn.flac", "sub/bad.wav": "sub/bad_dn.wav",
        "sub/deeper/c.ogg": "sub/deeper/c_dn.ogg"}
    assert not out.exists()  # planning changes nothing on disk; run() makes the folders
    assert output_name("B")(Path("x/talk.mp3")) == "talk_B.wav"
    assert output_name("dn", keep_format=True)(Path("talk.mp3")) == "talk_dn.wav"  # mp3 is not kept (lossy)
    # one file: to --output, or named beside the current folder
    assert plan(folder / "a.wav", output_name("B"), tmp_path / "y.wav") == ([Job(folder / "a.wav", tmp_path / "y.wav")],
                                                                           None)
    assert plan(folder / "a.wav", output_name("B"))[0][0].output == Path("a_B.wav")


def test_an_output_over_an_input_is_refused_before_any_work(folder, tmp_path):
    work = Copier()
    with pytest.raises(OutputError, match="would overwrite the input"):  # same name, written into the input folder
        map_files(folder, work, lambda p: p.name, out_dir=folder)
    write(folder / "a_x.wav", chirp(0.2), SR)  # a.wav -> a_x.wav would destroy this input
    with pytest.raises(OutputError, match=f"a_x.wav: output would overwrite the input {folder / 'a_x.wav'}"):
        map_files(folder, work, output_name("x"), out_dir=folder)
    with pytest.raises(OutputError, match="would overwrite the input"):  # a single file, through another spelling
        map_files(folder / "a.wav", work, output_name("x"), output=folder / "sub" / ".." / "a.wav")
    assert work.calls == [] and sf.info(folder / "a.wav").frames == SR // 2


def test_every_destination_is_checked_before_any_work(folder, tmp_path):
    work = Copier()
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is a file"):
        map_files(folder, work, output_name("x"), out_dir=tmp_path / "file" / "out")
    write(folder / "sub" / "a.wav", chirp(0.2), SR)
    (tmp_path / "out" / "sub").mkdir(parents=True)
    with pytest.raises(OutputError, match="the output of both"):  # a.wav and a.flac: one a_x.wav
        write(folder / "sub" / "a.flac", chirp(0.2), SR)
        map_files(folder, work, output_name("x"), out_dir=tmp_path / "out")
    (folder / "sub" / "a.flac").unlink()
    (tmp_path / "out" / "sub" / "b.wav").mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        map_files(folder, work, lambda p: p.stem + ".wav", out_dir=tmp_path / "out")
    with pytest.raises(OutputError, match="does not exist"):
        map_files(folder / "a.wav", work, output_name("x"), output=tmp_path / "missing" / "y.wav")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        with pytest.raises(OutputError, match="not writable"):
            map_files(folder, work, output_name("x"), out_dir=locked / "out")
    with pytest.raises(ConfigError, match="is a folder"):
        map_files(folder, work, output_name("x"), output=tmp_path / "one.wav")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudiovaeError, match="no audio files"):
        map_files(tmp_path / "empty", work, output_name("x"), out_dir=tmp_path / "out")
    assert work.calls == []


def test_earlier_outputs_inside_the_input_folder_are_not_inputs(folder):
    first = map_files(folder, Copier(), output_name("x"), out_dir=folder / "out")
    again = map_files(folder, Copier(), output_name("x"), out_dir=folder / "out")
    assert len(first.outcomes) == len(again.outcomes) == 4 and not (folder / "out" / "a_x_x.wav").exists()


def test_a_single_file_failure_is_listed_not_raised(tmp_path):
    (tmp_path / "bad.wav").write_text("not audio")
    summary = map_files(tmp_path / "bad.wav", Copier(), output_name("x"), output=tmp_path / "o.wav")
    assert summary.out_dir is None and summary.ok == [] and "not a readable" in summary.failed[0].note
    assert not (tmp_path / "o.wav").exists()


def test_join_puts_pauses_between_steps():
    out = join([torch.ones(10), 2 * torch.ones(5), 3 * torch.ones(2)], sample_rate=100, pause=0.3)
    assert out.shape == (10 + 30 + 5 + 30 + 2,)
    assert np.array_equal(out[10:40].numpy(), np.zeros(30)) and float(out[40]) == 2.0 and float(out[-1]) == 3.0


def test_outputs_beside_the_inputs_or_in_a_parent_folder(folder, monkeypatch):
    beside = map_files(folder, Copier(), output_name("x"), out_dir=folder)
    assert len(beside.ok) == 3 and (folder / "sub" / "b_x.wav").exists()
    monkeypatch.chdir(folder.parent)
    above = plan(folder, output_name("y"), out_dir=".")[0]  # an output folder above the inputs: all still inputs
    assert len(above) == 7 and Job(folder / "sub" / "b.flac", Path("sub/b_y.wav")) in above

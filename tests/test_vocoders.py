"""The vocoder contract and checkpoints that carry or point to a trained vocoder (format 2).

A toy trainable vocoder (a 1x1 convolution from each mel frame to a windowed grain, overlap-added) stands in for a
neural one: it is trained a little on a sine sweep so that its weights are its own, then saved beside a VAE, alone,
in fp32 and fp16, and loaded back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import chirp, devices
from safetensors import safe_open
from torch import nn

from audiovae.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoModelError,
    load_checkpoint,
    load_vocoder,
    save_checkpoint,
    save_vocoder,
)
from audiovae.commands.basics import _checkpoint_info
from audiovae.errors import ConfigError
from audiovae.features import MelConfig, MelSpectrogram
from audiovae.losses import multi_resolution_stft
from audiovae.models import build_model
from audiovae.pipelines import latent
from audiovae.pipelines.resynth import resynthesize
from audiovae.vocoders import VOCODERS, GriffinLim, Vocoder, build_vocoder, fit_length, register_vocoder

CFG = MelConfig()


@register_vocoder
class GrainVocoder(Vocoder):
    """Each log-mel frame -> a Hann-windowed grain of ``2 * hop`` samples (one 1x1 conv), overlap-added at ``hop``."""

    vocoder_type = "test-grain"

    def __init__(self, config: MelConfig | None = None, grain_hops: int = 2) -> None:
        super().__init__()
        self.config, self.grain_hops = config or MelConfig(), grain_hops
        self.size = grain_hops * self.config.hop_length
        self.proj = nn.Conv1d(self.config.n_mels, self.size, kernel_size=1)
        self.register_buffer("window", torch.hann_window(self.size), persistent=False)

    def forward(self, logmel: torch.Tensor, length: int | None = None, *, progress: bool = False) -> torch.Tensor:
        frames = logmel.shape[-1]
        grains = self.proj(logmel) * self.window[:, None]  # [B, size, F]
        hop = self.config.hop_length
        out = nn.functional.fold(grains, (1, (frames - 1) * hop + self.size), (1, self.size), stride=(1, hop))
        wave = out[:, 0, 0, self.size // 2:][..., : (frames - 1) * hop]  # centred frames, as the STFT's
        return fit_length(wave, length)


class Silent(Vocoder):
    """No parameters, no buffers: the contract still says where it runs (CPU)."""

    vocoder_type = "test-silent"

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, logmel: torch.Tensor, length: int | None = None, *, progress: bool = False) -> torch.Tensor:
        return fit_length(logmel.new_zeros(logmel.shape[0], (logmel.shape[-1] - 1) * self.config.hop_length), length)


def sweep_logmel(config: MelConfig = CFG) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sine sweeps ``[2, T]`` and their log-mels ``[2, n_mels, frames]``."""
    waves = torch.stack([torch.from_numpy(chirp(1.0, sr=config.sample_rate)),
                         torch.from_numpy(chirp(1.0, sr=config.sample_rate, fmin=300.0, fmax=4000.0))])
    return waves, MelSpectrogram(config)(waves)


@pytest.fixture(scope="module")
def trained() -> GrainVocoder:
    """A grain vocoder fitted for 40 steps to a sweep (multi-resolution STFT loss): trainable, and its own weights."""
    torch.manual_seed(0)
    voc = GrainVocoder(CFG)
    waves, logmel = sweep_logmel()
    opt = torch.optim.Adam(voc.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        loss = multi_resolution_stft(voc(logmel, length=waves.shape[-1]), waves)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses[::10]
    return voc.eval()


def tiny_vae() -> torch.nn.Module:
    torch.manual_seed(1)
    model = build_model("vae", {"channels": (32, 32), "latent_dim": 8}).eval()
    model.set_normalization(torch.full((CFG.n_mels,), -5.0), torch.full((CFG.n_mels,), 2.0))
    return model


def keys_and_meta(path: Path) -> tuple[list[str], dict]:
    with safe_open(str(path), framework="pt") as f:
        return sorted(f.keys()), json.loads(f.metadata()["audiovae"])


@pytest.mark.parametrize("device", devices())
def test_griffin_lim_keeps_the_contract(device):
    waves, logmel = sweep_logmel()
    voc = build_vocoder("griffin-lim", CFG, n_iter=8, seed=3).to(device)
    assert isinstance(voc, Vocoder) and voc.vocoder_type == "griffin-lim" and voc.device.type == device
    out = voc(logmel.to(device), length=waves.shape[-1] - 100)
    assert out.shape == (2, waves.shape[-1] - 100) and out.device.type == device
    # its settings rebuild it: same output, and no weights to save
    assert voc.settings() == {"n_iter": 8, "momentum": 0.99, "init": "random", "seed": 3, "inverse_iter": 32,
                              "magnitude": "inverse", "pghi_tol": 1e-5}
    again = build_vocoder(voc.vocoder_type, CFG, **json.loads(json.dumps(voc.settings()))).to(device)
    torch.testing.assert_close(again(logmel.to(device)), voc(logmel.to(device)))
    assert voc.state_dict() == {}
    # the resynthesis follows the sweeps (mel L1 in nats), far closer than noise of equal level does
    mel = MelSpectrogram(CFG)
    err = float((mel(out.cpu()) - mel(waves[:, :-100])).abs().mean())
    assert err < 0.5 * float((mel(torch.randn_like(waves) * 0.35) - logmel).abs().mean())


def test_device_comes_from_parameters_or_buffers_else_cpu(trained):
    assert Silent(CFG).device == torch.device("cpu")
    assert trained.device == torch.device("cpu")
    waves, _ = sweep_logmel()
    out = resynthesize(waves[0], trained)  # the pipeline asks the contract, not a buffer, where to compute
    assert out.shape == waves[0].shape
    silent = resynthesize(waves, Silent(CFG))  # a batch [B, T] in, a batch out
    assert silent.shape == waves.shape and silent.abs().max() == 0


def test_unknown_names_and_settings_are_refused():
    with pytest.raises(ConfigError, match=r"unknown vocoder 'hifigan'; choose one of: griffin-lim, mel-griffin-lim, "
                                          r"neural, test-grain"):
        build_vocoder("hifigan", CFG)
    with pytest.raises(ConfigError, match="vocoder 'griffin-lim'.*n_iters"):
        build_vocoder("griffin-lim", CFG, n_iters=4)
    with pytest.raises(ConfigError, match="already"):
        register_vocoder(type("GriffinLim2", (GriffinLim,), {}))
    with pytest.raises(ConfigError, match="Vocoder subclass"):
        register_vocoder(nn.Identity)
    assert VOCODERS["test-grain"] is GrainVocoder


@pytest.mark.parametrize("dtype", [None, torch.float16])
def test_model_and_trained_vocoder_round_trip_in_one_file(tmp_path, trained, dtype):
    model = tiny_vae()
    ckpt = Checkpoint(model, CFG, task="reconstruct", info={"step": 5}, components={"vocoder": trained})
    assert ckpt.vocoder == {"name": "test-grain"}
    path = save_checkpoint(tmp_path / "both.safetensors", ckpt, dtype=dtype)
    keys, meta = keys_and_meta(path)
    assert meta["format"] == 2 and set(meta["components"]) == {"model", "vocoder"} and "model" not in meta
    assert meta["components"]["vocoder"] == {"type": "test-grain", "config": {"grain_hops": 2}}
    assert {k.split(".")[0] for k in keys} == {"model", "vocoder"} and "vocoder.proj.weight" in keys

    back = load_checkpoint(path)
    assert back.vocoder == {"name": "test-grain"} and back.info == {"step": 5}
    assert isinstance(back.trained_vocoder, GrainVocoder) and not back.trained_vocoder.training
    waves, logmel = sweep_logmel()
    with torch.no_grad():
        expected, got = trained(logmel, length=waves.shape[-1]), back.trained_vocoder(logmel, length=waves.shape[-1])
        rec, rec_back = model.reconstruct(logmel), back.model.reconstruct(logmel)
    if dtype is None:
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
        torch.testing.assert_close(rec_back, rec, rtol=0, atol=0)
    else:  # fp16 applies to both components: close, not equal
        assert path.stat().st_size < 0.55 * save_checkpoint(tmp_path / "f32.safetensors", ckpt).stat().st_size
        rel = float((got - expected).norm() / expected.norm())
        assert 0 < rel < 0.01, rel
        torch.testing.assert_close(rec_back, rec, atol=0.05, rtol=0.01)
        assert back.trained_vocoder.proj.weight.dtype == torch.float32

    # vocoder_for picks the carried vocoder unless another is named; the pipelines then use it end to end
    assert latent.vocoder_for(back) is back.trained_vocoder
    assert latent.vocoder_for(back, "test-grain") is back.trained_vocoder
    assert isinstance(latent.vocoder_for(back, "griffin-lim", n_iter=2), GriffinLim)
    with pytest.raises(ConfigError, match="takes no settings"):
        latent.vocoder_for(back, n_iter=2)
    out = latent.reconstruct(waves[0], back)
    with torch.no_grad():
        direct = back.trained_vocoder(back.model.reconstruct(logmel[:1]), length=waves.shape[-1])[0]
    torch.testing.assert_close(out, direct)


def test_a_model_alone_is_written_as_format_2_with_one_component(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", Checkpoint(tiny_vae(), CFG))
    keys, meta = keys_and_meta(path)
    assert meta["format"] == 2 and list(meta["components"]) == ["model"] and "model" not in meta
    assert meta["components"]["model"]["type"] == "vae" and all(k.startswith("model.") for k in keys)
    back = load_checkpoint(path)
    assert back.components == {} and back.trained_vocoder is None
    # no vocoder of its own: mel-constrained Griffin-Lim
    default = latent.vocoder_for(back)
    assert default.vocoder_type == "mel-griffin-lim" and default.config == CFG
    assert isinstance(latent.vocoder_for(back, "griffin-lim"), GriffinLim)


def test_checkpoint_points_to_a_vocoder_file(tmp_path, trained, capsys):
    (tmp_path / "vocoders").mkdir()
    voc_path = save_vocoder(tmp_path / "vocoders" / "grain.safetensors", trained, info={"steps": 40})
    keys, meta = keys_and_meta(voc_path)
    assert meta["format"] == 2 and list(meta["components"]) == ["vocoder"] and all(k.startswith("vocoder.")
                                                                                   for k in keys)
    alone = load_vocoder(voc_path)
    waves, logmel = sweep_logmel()
    with torch.no_grad():
        expected = trained(logmel)
        torch.testing.assert_close(alone(logmel), expected, rtol=0, atol=0)
    with pytest.raises(NoModelError, match="load_vocoder"):
        load_checkpoint(voc_path)

    model_path = save_checkpoint(tmp_path / "vae.safetensors",
                                 Checkpoint(tiny_vae(), CFG, vocoder={"path": "vocoders/grain.safetensors"}))
    keys, meta = keys_and_meta(model_path)
    assert not any(k.startswith("vocoder.") for k in keys) and meta["vocoder"] == {"path": "vocoders/grain.safetensors"}
    back = load_checkpoint(model_path)  # the pointer is relative to the checkpoint, not to the working directory
    assert back.vocoder == {"path": "vocoders/grain.safetensors"}
    with torch.no_grad():
        torch.testing.assert_close(latent.vocoder_for(back)(logmel), expected, rtol=0, atol=0)
        torch.testing.assert_close(load_vocoder(model_path)(logmel), expected, rtol=0, atol=0)
    # saving again keeps the pointer (the vocoder's weights stay in their own file)
    resaved = save_checkpoint(tmp_path / "vae2.safetensors", back)
    assert keys_and_meta(resaved)[1]["vocoder"] == {"path": "vocoders/grain.safetensors"}

    _checkpoint_info(model_path)
    assert "test-grain" in capsys.readouterr().out.split("vocoder", 1)[1].splitlines()[0]
    _checkpoint_info(voc_path)
    assert "test-grain" in capsys.readouterr().out

    voc_path.unlink()
    with pytest.raises(CheckpointError, match="points to vocoder .*grain.safetensors, which does not exist"):
        load_checkpoint(model_path)


def test_mismatched_features_are_refused_naming_both_files(tmp_path, trained):
    other = MelConfig(n_mels=64, f_max=11025.0)
    save_vocoder(tmp_path / "voc64.safetensors", GrainVocoder(other))
    model_path = save_checkpoint(tmp_path / "vae.safetensors",
                                 Checkpoint(tiny_vae(), CFG, vocoder={"path": "voc64.safetensors"}))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(model_path)
    message = str(e.value)
    assert "\n" not in message and "vae.safetensors" in message and "voc64.safetensors" in message
    assert CFG.fingerprint() in message and other.fingerprint() in message
    assert "n_mels 80 vs 64" in message and "f_max 8000.0 vs 11025.0" in message
    # and a vocoder for other features cannot be saved inside a model's file either (nothing is written)
    with pytest.raises(CheckpointError, match="n_mels 64 vs 80"):
        save_checkpoint(tmp_path / "bad.safetensors", Checkpoint(tiny_vae(), CFG,
                                                                 components={"vocoder": GrainVocoder(other)}))
    assert not (tmp_path / "bad.safetensors").exists() and not list(tmp_path.glob(".bad*"))
    with pytest.raises(CheckpointError, match="not registered"):
        save_vocoder(tmp_path / "silent.safetensors", Silent(CFG))


def test_a_safetensors_header_size_ending_in_0x80_is_not_taken_for_a_pickle(tmp_path):
    """safetensors files begin with their header size: a low byte 0x80 looks like a pickle's first byte."""
    model = tiny_vae()
    for pad in range(256):
        path = save_checkpoint(tmp_path / "m.safetensors", Checkpoint(model, CFG, info={"pad": "x" * pad}))
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header size ending in 0x80")
    assert load_checkpoint(path).info == {"pad": "x" * pad}


def test_export_puts_a_pointed_to_vocoder_inside_the_bundled_file(tmp_path, trained, monkeypatch):
    """recipes/export.py writes one self-contained fp16 file: the run's vocoder pointer becomes an embedded vocoder."""
    import runpy
    import sys

    save_vocoder(tmp_path / "grain.safetensors", trained)
    run = save_checkpoint(tmp_path / "model.safetensors",
                          Checkpoint(tiny_vae(), CFG, vocoder={"path": "grain.safetensors"}))
    (tmp_path / "out").mkdir()
    monkeypatch.setattr(sys, "argv", ["export.py", str(run), "-o", str(tmp_path / "out" / "bundled.safetensors")])
    runpy.run_path(str(Path(__file__).resolve().parent.parent / "recipes" / "export.py"), run_name="__main__")
    keys, meta = keys_and_meta(tmp_path / "out" / "bundled.safetensors")
    assert meta["vocoder"] == {"name": "test-grain"} and "vocoder.proj.weight" in keys
    (tmp_path / "grain.safetensors").unlink()  # the bundled file no longer needs it
    bundled = load_checkpoint(tmp_path / "out" / "bundled.safetensors")
    _, logmel = sweep_logmel()
    with torch.no_grad():
        expected = trained(logmel)
        assert float((bundled.trained_vocoder(logmel) - expected).norm() / expected.norm()) < 0.01

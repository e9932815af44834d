"""The training engine: configs, overfitting, exact resume, checkpoints, the NaN guard, torchrun, speakers.

Every run is a tiny model (32 channels, 8 latent dims) on 32-frame crops of short sines and chirps written here, so
the whole file takes well under a minute on two CPU cores.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import SR, chirp, log_rows, sine, train_clips
from torch import nn

from audiovae.checkpoint import load_checkpoint, load_torch_state
from audiovae.errors import AudiovaeError, ConfigError
from audiovae.models import MODELS, ConvVAE
from audiovae.training import Trainer, epoch_order, load_run_config, lr_factor, packaged_configs, train

# tiny data sets have no valid split; untrained tiny models may look collapsed
pytestmark = [pytest.mark.filterwarnings("ignore:.*no validation files"),
              pytest.mark.filterwarnings("ignore::audiovae.training.CollapseWarning"),
              pytest.mark.filterwarnings("ignore:.*non-finite loss")]

SPEAKERS = ("alice", "bob", "carol")
TINY = ["model.channels=[32, 32]", "model.latent_dim=8", "model.blocks=1", "data.segment_frames=32",
        "data.cache_dir=null", "train.batch_size=4", "train.warmup_steps=3", "train.log_every=1",
        "train.amp=false"]  # fp32 whatever the CPU: amp=auto would be bf16 on CPUs with native bf16 only


@pytest.fixture(scope="module")
def speakers_dir(tmp_path_factory) -> Path:
    """Three 'speakers' (folders) of four 0.6-s chirp + sine files each; a couple fall in the valid split."""
    root = tmp_path_factory.mktemp("speakers")
    for s, name in enumerate(SPEAKERS):
        (root / name).mkdir()
        for i in range(4):
            y = chirp(0.6, fmin=100.0 + 50 * i + 30 * s, fmax=3000.0 + 600 * s) + sine(220.0 * (s + 1), 0.6, SR, 0.2)
            sf.write(root / name / f"{name}_{i}.wav", y, SR)
    return root


@pytest.fixture(scope="module")
def one_batch_dir(tmp_path_factory) -> Path:
    """Exactly four training files no longer than one 32-frame crop: every batch is the same batch."""
    return train_clips(tmp_path_factory.mktemp("one_batch"), "o",
                       [chirp(0.3, fmin=200.0 * (i + 1), fmax=6000.0) for i in range(4)])


def tiny(data: Path, out: Path, *extra: str, config: str = "speech_vae"):  # noqa: ANN201
    return load_run_config(config, [f"data.train={data}", f"train.out_dir={out}", *TINY, *extra])


# --- configuration ------------------------------------------------------------------------------------------------


def test_packaged_configs_load_by_name_with_overrides():
    assert {"speech_vae", "speech_cvae"} <= set(packaged_configs())
    vae = load_run_config("speech_vae")
    assert vae.model["type"] == "vae" and vae.data.conditioning == "none" and vae.data.segment_frames == 128
    cvae = load_run_config("speech_cvae.yaml")
    assert cvae.model["type"] == "cvae" and cvae.data.conditioning == "speaker"
    assert cvae.model["instance_norm"] and 0 < cvae.model["adversary_weight"] < 1
    r = load_run_config("speech_vae", ["train.steps=200", "model.latent_dim=16", "train.lr=3e-4",
                                       "model.channels=[64, 64]", "data.cache_dir=null", "mel.n_mels=64"])
    assert (r.train.steps, r.model["latent_dim"], r.train.lr, r.model["channels"]) == (200, 16, 3e-4, (64, 64))
    assert r.data.cache_dir is None and r.model["n_mels"] == r.mel.n_mels == 64
    assert isinstance(r.train.lr, float)  # YAML reads 3e-4 as a string: coerced


def test_config_file_round_trips(tmp_path):
    r = load_run_config("speech_vae", ["train.steps=7"])
    path = tmp_path / "run.yaml"
    path.write_text(r.to_yaml())
    assert load_run_config(path) == r


@pytest.mark.parametrize("override, key", [("train.stpes=3", "train.stpes"), ("model.latnet_dim=4", "model.latnet_dim"),
                                           ("data.foo=1", "data.foo"), ("optim.lr=1", "optim"),
                                           ("train.steps=many", "train.steps"), ("train.amp=maybe", "train.amp"),
                                           ("train.compile=maybe", "train.compile"),
                                           ("steps", "steps")])
def test_bad_keys_and_values_are_one_line_errors_naming_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_run_config("speech_vae", [override])
    assert key in str(err.value) and "\n" not in str(err.value)


def test_a_config_states_only_what_it_changes_over_its_base(tmp_path):
    fine, coarse = load_run_config("anomaly_vae_fine").to_dict(), load_run_config("anomaly_vae").to_dict()
    changed = {(section, key) for section in coarse if isinstance(coarse[section], dict)
               for key in coarse[section] if coarse[section][key] != fine[section][key]}
    assert changed == {("mel", "n_fft"), ("mel", "hop_length"), ("mel", "win_length"), ("data", "segment_frames")}
    (tmp_path / "mine.yaml").write_text("base: speech_vae\ntrain:\n  steps: 7\nmodel:\n  latent_dim: 5\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.yaml").write_text("base: ../mine.yaml\ntrain:\n  lr: 1.0e-4\n")
    r = load_run_config(tmp_path / "sub" / "more.yaml", ["train.seed=3"])
    base = load_run_config("speech_vae")
    assert (r.train.steps, r.train.lr, r.train.seed, r.model["latent_dim"]) == (7, 1e-4, 3, 5)
    assert r.model["channels"] == base.model["channels"] and r.mel == base.mel  # the rest inherited, merged per key
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="loop"):
        load_run_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: [1]\n")
    with pytest.raises(ConfigError, match="base must name a config"):
        load_run_config(tmp_path / "c.yaml")


def test_unknown_config_name_lists_the_packaged_ones():
    with pytest.raises(ConfigError, match="speech_vae"):
        load_run_config("no_such_config")


def test_data_order_is_a_pure_function_of_seed_and_epoch():
    a, b = epoch_order(0, 3, 10, 4), epoch_order(0, 3, 10, 4)
    assert torch.equal(a, b) and len(a) == 8 and not torch.equal(a, epoch_order(0, 4, 10, 4))
    assert len(epoch_order(0, 0, 3, 4)) == 4  # fewer files than a batch: tiled
    assert lr_factor(0, 10, 100, "cosine") == pytest.approx(0.1) and lr_factor(100, 10, 100, "cosine") == 0.0


# --- training -----------------------------------------------------------------------------------------------------


def test_tiny_model_overfits_one_batch(one_batch_dir, tmp_path):
    cfg = tiny(one_batch_dir, tmp_path / "run", "train.steps=300", "train.lr=3e-3", "train.lr_schedule=constant",
               "model.beta=0", "model.free_bits=0", "train.valid_every=1000", "train.ema_decay=0")
    trainer = Trainer(cfg, "cpu", progress=False)
    trainer.fit()
    log = log_rows(tmp_path / "run")
    first, last = float(log[0]["mel_l1"]), float(log[-1]["mel_l1"])
    assert first / last >= 10, (first, last)
    assert (tmp_path / "run" / "plots" / "step_000300.png").stat().st_size > 1000


@pytest.mark.parametrize("amp", ["false", "true"])  # fp32, and bf16 autocast (emulated where the CPU lacks it)
def test_resume_continues_exactly(speakers_dir, tmp_path, amp):
    extra = ("train.steps=12", "train.valid_every=4", "train.checkpoint_every=100", "train.ema_decay=0.9",
             f"train.amp={amp}")
    Trainer(tiny(speakers_dir, tmp_path / "a", *extra), "cpu", progress=False).fit()
    Trainer(tiny(speakers_dir, tmp_path / "b", *extra), "cpu", progress=False).fit(until=5)  # mid-epoch
    assert load_torch_state(tmp_path / "b" / "state.pt")["step"] == 5
    resumed = Trainer(tiny(speakers_dir, tmp_path / "b", *extra), "cpu", resume=True, progress=False)
    resumed.fit()
    a, b = log_rows(tmp_path / "a"), log_rows(tmp_path / "b")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [str(s) for s in range(1, 13)]
    for ra, rb in zip(a[5:], b[5:], strict=True):
        for key in ra:
            if key != "audio_s_per_s" and ra[key]:
                assert float(rb[key]) == pytest.approx(float(ra[key]), abs=1e-6, rel=1e-6), (ra["step"], key)
    final_a = load_checkpoint(tmp_path / "a" / "model.safetensors").model.state_dict()
    final_b = load_checkpoint(tmp_path / "b" / "model.safetensors").model.state_dict()
    assert all(torch.allclose(final_a[k], final_b[k], atol=1e-6) for k in final_a)


@pytest.mark.parametrize("ema", [0.9, 0.0])
def test_checkpoint_rebuilds_the_trained_model(speakers_dir, tmp_path, ema):
    trainer = Trainer(tiny(speakers_dir, tmp_path, "train.steps=6", f"train.ema_decay={ema}"), "cpu",
                      progress=False)
    path = trainer.fit()
    ckpt = load_checkpoint(path)
    assert ckpt.info["step"] == 6 and "valid_loss" in ckpt.info and ckpt.speakers == [] and ckpt.task == "reconstruct"
    mel = next(iter(trainer._valid_data()))["mel"]
    used = trainer.ema if ema else trainer.model
    assert (trainer.ema is None) == (ema == 0)
    torch.testing.assert_close(ckpt.model.reconstruct(mel), used.eval().reconstruct(mel), atol=1e-6, rtol=0)
    torch.testing.assert_close(ckpt.model.mel_std, trainer.model.mel_std)
    assert float(trainer.model.mel_std.min()) > 0.01 and float(trainer.model.mel_mean.abs().max()) > 0.1  # fitted
    state = load_torch_state(tmp_path / "state.pt")  # weights_only=True
    assert {"model", "ema", "optimizers", "rng", "order", "epoch", "batch_in_epoch"} <= set(state)
    assert load_run_config(tmp_path / "config.yaml").model == {**trainer.config.model}


def test_an_existing_run_is_not_overwritten_without_resume(speakers_dir, tmp_path):
    Trainer(tiny(speakers_dir, tmp_path, "train.steps=1"), "cpu", progress=False).fit()
    with pytest.raises(ConfigError, match="resume"):
        Trainer(tiny(speakers_dir, tmp_path, "train.steps=1"), "cpu", progress=False)
    with pytest.raises(ConfigError, match="model.latent_dim"):
        Trainer(tiny(speakers_dir, tmp_path, "train.steps=2", "model.latent_dim=4"), "cpu", resume=True)


def _poison(trainer: Trainer, bad_steps: set[int] | None) -> None:
    """Make the model's loss NaN at the given steps (all steps from 3 on when None)."""
    loss = trainer.model.loss

    def patched(batch, step):  # noqa: ANN001, ANN202
        out = loss(batch, step)
        if (step >= 3) if bad_steps is None else (step in bad_steps):
            out.losses["model"] = out.losses["model"] * float("nan")
        return out

    trainer.model.loss = patched


def test_non_finite_steps_are_skipped_then_abort(speakers_dir, tmp_path):
    trainer = Trainer(tiny(speakers_dir, tmp_path / "a", "train.steps=6", "train.max_bad_steps=3"), "cpu",
                      progress=False)
    _poison(trainer, {2, 3})
    trainer.fit()
    log = log_rows(tmp_path / "a")
    assert [r["skipped"] for r in log] == ["0", "0", "1", "1", "0", "0"] and log[2]["loss"] == ""
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())

    trainer = Trainer(tiny(speakers_dir, tmp_path / "b", "train.steps=20", "train.max_bad_steps=3"), "cpu",
                      progress=False)
    _poison(trainer, None)
    with pytest.raises(AudiovaeError, match="3 non-finite steps in a row") as err:
        trainer.fit()
    assert "\n" not in str(err.value) and "up to step 6" in str(err.value) and trainer.step == 5


class AdversarialVAE(ConvVAE):
    """A VAE plus a critic in its own parameter group, the shape of the adversarial variants (AAE, GAN vocoders)."""

    model_type = "toy_adversarial"

    def __init__(self, config) -> None:  # noqa: ANN001
        super().__init__(config)
        self.disc = nn.Conv1d(config.n_mels, 1, 3, padding=1)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"model": [p for n, p in self.named_parameters() if not n.startswith("disc.")],
                "disc": list(self.disc.parameters())}

    def critic_loss(self, mel: torch.Tensor) -> torch.Tensor:
        fake = self.normalize(self.decode(self.encode(mel).mode())).detach()
        return (self.disc(fake) - self.disc(self.normalize(mel))).mean()

    def loss(self, batch, step):  # noqa: ANN001, ANN201
        out = super().loss(batch, step)
        fake = self.normalize(self.decode(self.encode(batch["mel"]).mode()))
        out.losses["model"] = out.losses["model"] - self.disc(fake).mean()  # has a gradient w.r.t. the disc too
        out.losses["disc"] = self.critic_loss(batch["mel"])
        return out


def test_each_group_loss_reaches_only_its_own_parameters(speakers_dir, tmp_path, monkeypatch):
    """One real critic step: its update is Adam's first step on the critic's own loss alone (had the generator's
    loss, which also depends on the critic, leaked in, the signs would differ), at its own learning rate."""
    monkeypatch.setitem(MODELS, "toy_adversarial", AdversarialVAE)
    cfg = tiny(speakers_dir, tmp_path, "model.type=toy_adversarial", "train.steps=3", "train.weight_decay=0",
               "train.ema_decay=0", "train.lr=1e-3", "train.optim.disc.lr=4e-4", "train.optim.disc.grad_clip=0")
    trainer = Trainer(cfg, "cpu", progress=False)
    assert [g["lr"] for g in (trainer.settings["model"], trainer.settings["disc"])] == [1e-3, 4e-4]
    batch = next(iter(trainer._loader(trainer.train_set, trainer._epoch_batches()[:1], 0)))
    trainer.model.critic_loss(batch["mel"]).backward(inputs=list(trainer.model.disc.parameters()))
    grads = [p.grad.clone() for p in trainer.model.disc.parameters()]
    trainer.model.zero_grad(set_to_none=True)
    before = [p.detach().clone() for p in trainer.model.disc.parameters()]
    rest = [p.detach().clone() for p in trainer.groups["model"]]
    trainer.fit(until=1)
    lr = 4e-4 / 3  # warmup: step 1 of 3
    (gw, gb), (bw, bb), (aw, ab) = grads, before, list(trainer.model.disc.parameters())
    big = gw.abs() > 1e-5
    assert big.sum() > gw.numel() // 2
    torch.testing.assert_close((aw.detach() - bw)[big], -lr * gw.sign()[big], rtol=1e-3, atol=1e-9)
    # the critic loss is a difference of means: zero gradient for the bias, so the bias stays (the generator's
    # term alone would have pushed it by a full step)
    assert float(gb.abs().max()) < 1e-7 and torch.equal(ab.detach(), bb)
    assert not all(torch.equal(a, b) for a, b in zip(rest, trainer.groups["model"], strict=True))
    log = log_rows(tmp_path)
    assert float(log[-1]["grad_norm_disc"]) > 0 and float(log[-1]["grad_norm"]) > 0 and "loss_disc" in log[-1]


def test_cvae_checkpoint_holds_the_speaker_folders(speakers_dir, tmp_path):
    cfg = tiny(speakers_dir, tmp_path, "train.steps=2", "model.speaker_dim=8", config="speech_cvae")
    path = Trainer(cfg, "cpu", progress=False).fit()
    ckpt = load_checkpoint(path)
    assert ckpt.speakers == sorted(SPEAKERS) and ckpt.model.config.n_speakers == 3 and ckpt.task == "convert"
    assert 0.0 <= ckpt.info["valid_adversary_accuracy"] <= 1.0  # the CVAE's own validation metric
    registers = ckpt.info["pitch"]  # each voice's pitch register, for `convert --pitch auto`
    assert sorted(registers) == sorted(SPEAKERS)
    assert all(50 < math.exp(mean) < 500 and std > 0 and 50 < math.exp(median) < 500
               for mean, std, median in registers.values())
    mel = torch.randn(1, 80, 32) - 5
    assert ckpt.model.reconstruct(mel, torch.tensor([2])).shape == mel.shape


def test_cvae_without_speaker_conditioning_is_a_config_error(speakers_dir, tmp_path):
    with pytest.raises(ConfigError, match="conditioning"):
        Trainer(tiny(speakers_dir, tmp_path, "data.conditioning=none", config="speech_cvae"), "cpu")


# --- torchrun -----------------------------------------------------------------------------------------------------

def test_two_process_torchrun_matches_one_process(speakers_dir, tmp_path):
    extra = ["train.steps=16", "train.valid_every=8", "train.checkpoint_every=8", "train.ema_decay=0"]
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent("""
        import hashlib, sys
        import torch
        from audiovae.training import Trainer, load_run_config
        trainer = Trainer(load_run_config("speech_vae", sys.argv[1:]), "cpu", progress=False)
        trainer.fit()
        weights = b"".join(p.detach().numpy().tobytes() for p in trainer.model.parameters())
        print(f"rank {trainer.rank} of {trainer.world}: {hashlib.sha1(weights).hexdigest()}", flush=True)
        trainer.close()
    """))
    common = [f"data.train={speakers_dir}", *TINY, *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out2 = tmp_path / "two"
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                        str(script), *common, f"train.out_dir={out2}"], capture_output=True, text=True, env=env,
                       timeout=900)  # catches a hang; about 40 s on a busy 2-core machine
    assert p.returncode == 0, p.stderr[-3000:]
    hashes = dict(re.findall(r"rank (\d) of 2: ([0-9a-f]{40})", p.stdout))  # the ranks' lines may interleave
    assert sorted(hashes) == ["0", "1"] and hashes["0"] == hashes["1"]  # DDP kept the weights identical
    assert sorted(f.name for f in out2.iterdir()) == ["config.yaml", "log.csv", "model.safetensors", "plots",
                                                     "state.pt"]
    assert load_torch_state(out2 / "state.pt")["world_size"] == 2

    out1 = tmp_path / "one"
    train("speech_vae", [*common, f"train.out_dir={out1}"], device="cpu")
    one, two = log_rows(out1), log_rows(out2)
    assert [r["step"] for r in one] == [r["step"] for r in two]
    # Same global batches and initial weights; only the reparameterisation noise of the second half of each batch
    # differs (it is drawn on another process), so the curves agree closely but not exactly.
    rel = [abs(float(a["loss"]) - float(b["loss"])) / float(a["loss"]) for a, b in zip(one, two, strict=True)]
    assert max(rel) < 0.05 and sum(rel) / len(rel) < 0.01, rel  # measured: max 0.2-1.3 %, mean 0.1-0.35 %
    assert float(two[-1]["valid_loss"]) == pytest.approx(float(one[-1]["valid_loss"]), rel=0.02)  # measured < 0.5 %
    assert math.isfinite(float(two[-1]["audio_s_per_s"]))



def test_compile_runs_each_trained_part_through_dynamo_and_changes_nothing_saved(speakers_dir, tmp_path, monkeypatch):
    """``train.compile``: every child of the model that trains is compiled in place (dynamo's eager backend here, so
    the test needs no C++ compiler and no minutes of Inductor), the weights train to what eager training gives, and
    the checkpoint's names and loading are unchanged."""
    compiled = []
    original = torch.nn.Module.compile

    def eager_backend(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        compiled.append(type(self).__name__)
        return original(self, *args, **{**kwargs, "backend": "eager"})

    monkeypatch.setattr(torch.nn.Module, "compile", eager_backend)
    torch._dynamo.reset()
    runs = {}
    for flag in ("false", "true"):
        trainer = Trainer(tiny(speakers_dir, tmp_path / flag, "train.steps=4", "train.ema_decay=0",
                               f"train.compile={flag}"), "cpu", progress=False)
        runs[flag] = load_checkpoint(trainer.fit()).model.state_dict()
    assert {"ConvEncoder", "ConvDecoder"} <= set(compiled), compiled
    assert runs["true"].keys() == runs["false"].keys()
    for k, v in runs["false"].items():
        torch.testing.assert_close(runs["true"][k], v, atol=1e-5, rtol=1e-4, msg=k)

"""Export a trained run as a bundled model: fp16 safetensors of at most 15 MB, with its provenance in the info.

Usage: ``python recipes/export.py RUN/model.safetensors -o OUT.safetensors [--letters] [--evaluation EVAL.json]
[--recipe recipes/NAME/run.sh]``

``--letters`` (voice conversion) renames the speakers A, B, C, … in their sorted order and records which voice each
letter is (corpus voice, engine, how it was derived, sex, median F0), so ``audiovae speakers`` can tell. With
``--data CORPUS`` every speaker's pitch register (mean, spread and median of log-F0) is measured again on its
training files, so that checkpoints trained before the median was recorded get it too. Evaluation numbers, when
given, go into the info too. The weights are the run's (EMA) weights in float16: half the size, and the log-mels they
produce differ from float32's by far less than the model's own error (checked and printed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import string
from pathlib import Path
from typing import NamedTuple

import torch

from audiovae.checkpoint import DEFAULT_VOCODER, Checkpoint, load_checkpoint, save_checkpoint
from audiovae.data.corpora.speech import VOICES
from audiovae.data.layouts import SPEECHOCEAN_PREFIX, discover
from audiovae.fileio import atomic_path
from audiovae.pitch import Register, speaker_registers

LIMIT_MB = 15.0


def describe(name: str, pitch: list[float] | None, sex: str = "") -> dict[str, object]:
    """What ``audiovae speakers`` prints for one voice of the bundled model: the voice's name, the corpus it comes
    from and its speaker id there, sex, how a synthetic voice was made, median F0."""
    voice = VOICES.get(name)
    out: dict[str, object] = {"voice": name}
    if voice is not None:
        out |= {"corpus": "audiovae corpus speech", "speaker_id": name, "sex": voice.sex,
                "made_by": f"{voice.engine} {voice.name}", "about": voice.about}
    elif name.startswith(SPEECHOCEAN_PREFIX):
        out |= {"corpus": "speechocean762", "speaker_id": name.removeprefix(SPEECHOCEAN_PREFIX),
                "sex": {"f": "female", "m": "male"}.get(sex, sex)}
    elif sex:
        out["sex"] = {"f": "female", "m": "male"}.get(sex, sex)
    if pitch:
        out["median_f0_hz"] = round(Register.from_list(pitch).median_hz, 1)
    return out


def featured(speakers: list[str], sex: dict[str, str], pitch: dict[str, list[float]], n: int) -> list[str]:
    """``n`` voices to letter, spread over the register: half (rounded up) of the sex with more speakers, the rest
    of the other, each evenly spaced in median F0 (lowest to highest); men first, then women."""
    groups: dict[str, list[str]] = {}
    for name in speakers:
        groups.setdefault(sex.get(name, ""), []).append(name)
    order = sorted(groups, key=lambda k: (k != "m", k))
    counts, left = dict.fromkeys(order, 0), n
    by_size = sorted(order, key=lambda k: -len(groups[k]))
    for i, k in enumerate(by_size):  # an even share of what is left, rounded up, to the larger groups first
        counts[k] = min(-(-left // (len(by_size) - i)), len(groups[k]))
        left -= counts[k]
    chosen = []
    for k in order:
        ranked = sorted(groups[k], key=lambda s: Register.from_list(pitch[s]).median_hz if s in pitch else 0.0)
        m = counts[k]
        mid = len(ranked) // 2  # one voice: the middle of the register
        chosen += [ranked[round(i * (len(ranked) - 1) / (m - 1))] for i in range(m)] if m > 1 else ranked[mid:mid + m]
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="model.safetensors of a training run")
    ap.add_argument("-o", "--output", type=Path, required=True, help="e.g. audiovae/assets/models/NAME.safetensors")
    ap.add_argument("--letters", action="store_true", help="rename the speakers A, B, C, ... (voice conversion)")
    ap.add_argument("--featured", type=int, default=0, help="with --letters: letter only this many voices, spread "
                    "over sex and register (needs --data); the others keep their corpus names")
    ap.add_argument("--evaluation", type=Path, help="evaluation JSON of the same model, recorded in its info")
    ap.add_argument("--recipe", default="", help="the recipe that reproduces the file, recorded in its info")
    ap.add_argument("--data", type=Path, help="the training corpus: measure each speaker's pitch register again")
    ap.add_argument("--install", type=Path, help="the bundled file inside the package: replaced by the export only "
                    "when it is missing or the new evaluation is better (voice conversion: lower MCD, no fewer "
                    "pairs closer to the target; denoising: higher PESQ-wb gain, no lower SI-SDR gain; music: "
                    "lower Fréchet distance of prior samples, no higher reconstruction mel L1)")
    args = ap.parse_args()

    ckpt = load_checkpoint(args.model)
    speakers, info = list(ckpt.speakers), dict(ckpt.info, recipe=args.recipe)
    sex: dict[str, str] = {}
    if args.data:
        train = [e for e in discover(args.data) if e.split == "train" and e.speaker in speakers]
        info["pitch"] = {name: r.to_list() for name, r in speaker_registers(train, ckpt.mel).items()}
        sex = {e.speaker: e.sex for e in train if e.sex}
    if args.letters:
        lettered = featured(speakers, sex, info.get("pitch", {}), args.featured) if args.featured else speakers
        if len(lettered) > len(string.ascii_uppercase):
            raise SystemExit(f"{args.model}: {len(speakers)} speakers; letters run out at 26 (--featured N)")
        rename = {name: name for name in speakers} | dict(zip(lettered, string.ascii_uppercase, strict=False))
        info["voices"] = {rename[name]: describe(name, info.get("pitch", {}).get(name), sex.get(name, ""))
                          for name in speakers}
        info["trained_speakers"], speakers = speakers, [rename[name] for name in speakers]
        info["pitch"] = {rename[name]: stats for name, stats in info.get("pitch", {}).items()}
    if args.evaluation:
        report = json.loads(args.evaluation.read_text())
        report.pop("per_pair", None)  # the summary rows are enough to compare versions
        info["evaluation"] = report
    # a trained vocoder goes inside the bundled file, also when the run's checkpoint only pointed to it
    vocoder = {k: v for k, v in ckpt.vocoder.items() if k != "path"} or dict(DEFAULT_VOCODER)
    bundled = Checkpoint(ckpt.model, ckpt.mel, speakers, ckpt.task, vocoder, info, dict(ckpt.components))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.output, bundled, dtype=torch.float16)
    size_mb = args.output.stat().st_size / 1e6

    half = load_checkpoint(args.output)  # the fp16 file decodes like the fp32 model
    mel = torch.randn(2, ckpt.mel.n_mels, 200) + ckpt.model.mel_mean[:, None]
    ids = torch.tensor([0, len(speakers) - 1]) if speakers else None
    with torch.inference_mode():
        diff = float((half.model.reconstruct(mel, ids) - ckpt.model.reconstruct(mel, ids)).abs().mean())
    for letter, voice in info.get("voices", {}).items():
        print(f"  {letter}  " + ", ".join(f"{k}={v}" for k, v in voice.items()))
    print(f"wrote {args.output}: {size_mb:.1f} MB (limit {LIMIT_MB:g}), fp16 vs fp32 mean |log-mel diff| {diff:.4f}")
    if size_mb > LIMIT_MB:
        raise SystemExit(f"{args.output}: {size_mb:.1f} MB is over the {LIMIT_MB:g} MB limit for bundled models")
    if args.install:
        install(args.output, args.install)


# the rows a denoiser is judged by, best evidence first: real voices in recorded noise it never heard, then (for
# models evaluated before real recordings) the synthetic voices
HEADLINES_DENOISE = ("unheard real speakers, unheard recorded noise, 0-10 dB", "synthetic voices, 0-10 dB")


class Headline(NamedTuple):
    """The two numbers a bundled model is judged by (higher is better in both), and how to say them. ``evidence``
    ranks what they were measured on (higher: closer to what users bring); numbers of unequal evidence are not
    compared, the better evidence wins."""

    text: str
    first: float
    second: float
    evidence: int = 0


def headline(task: str, evaluation: dict) -> Headline | None:
    """A bundled model's :class:`Headline` from the evaluation recorded in it (None when there is none)."""
    if task == "denoise":
        rows = {r["name"]: r for r in evaluation.get("rows", [])}
        name = next((n for n in HEADLINES_DENOISE if n in rows), None)
        if name is None:
            return None
        row = rows[name]
        gain = {m: row["output"][m] - row["noisy"][m] for m in ("pesq", "si_sdr")}
        return Headline(f"PESQ-wb {gain['pesq']:+.2f}, SI-SDR {gain['si_sdr']:+.1f} dB ({name})",
                        gain["pesq"], gain["si_sdr"], len(HEADLINES_DENOISE) - HEADLINES_DENOISE.index(name))
    if task == "music":
        frechet, recon = evaluation.get("frechet", {}), evaluation.get("reconstruction", {})
        if "prior samples" not in frechet or "model_mel_l1" not in recon:
            return None
        return Headline(f"Fréchet distance {frechet['prior samples']:.2f} (prior samples to held-out music), "
                        f"reconstruction mel L1 {recon['model_mel_l1']:.3f}", -frechet["prior samples"],
                        -recon["model_mel_l1"])
    converted = evaluation.get("converted")
    if converted is None:
        return None
    if converted.get("mcd_db") is None:  # real speakers without parallel text (closer evidence than synthetic)
        return Headline(f"{100 * converted['closer_to_target']:.0f} % closer to the target, speaker ID "
                        f"{100 * converted['speaker_id_accuracy']:.0f} % among {evaluation.get('table_size')} "
                        "real voices", converted["closer_to_target"], converted["speaker_id_accuracy"], 1)
    return Headline(f"MCD {converted['mcd_db']:.2f} dB, {100 * converted['closer_to_target']:.0f} % closer to the "
                    "target", -converted["mcd_db"], converted["closer_to_target"])


def install(new: Path, bundled: Path) -> bool:
    """Copy ``new`` over ``bundled`` (atomically) when there is none yet or ``new`` evaluates better (the first of
    its :func:`headline` numbers better, the second no worse); say which."""
    if bundled.exists():
        new_ckpt, old_ckpt = load_checkpoint(new), load_checkpoint(bundled)
        new_eval = headline(new_ckpt.task, new_ckpt.info.get("evaluation", {}))
        old_eval = headline(old_ckpt.task, old_ckpt.info.get("evaluation", {}))
        if new_eval is None:
            print(f"kept {bundled}: the export carries no evaluation to compare (--evaluation)")
            return False
        if old_eval is not None and new_eval.evidence < old_eval.evidence:
            print(f"kept {bundled}: it was measured on closer evidence ({old_eval.text}) than the new export "
                  f"({new_eval.text})")
            return False
        if old_eval is not None and new_eval.evidence == old_eval.evidence and not (
                new_eval.first > old_eval.first and new_eval.second >= old_eval.second):
            print(f"kept {bundled}: it scores {old_eval.text}; the new export {new_eval.text}")
            return False
    bundled.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(bundled) as tmp:
        shutil.copyfile(new, tmp)
    print(f"installed {new} as {bundled}")
    return True


if __name__ == "__main__":
    main()

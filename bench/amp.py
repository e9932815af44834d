"""Does bf16 autocast train as well as fp32 here, and how much faster is it?

Trains one config three times on the same data for the same steps: fp32 with seed 0 and seed 1 (the spread between
them is the noise of the final validation loss) and bf16 autocast with seed 0, then prints each run's validation loss
and steps per second and the bf16/fp32 ratios. bf16 "matches" when its loss lies within the fp32 seed spread (or 1 %).

    python bench/amp.py                          # speech_cvae, 600 steps, a small speech corpus built here
    python bench/amp.py --config speech_vae --steps 1500 --data corpora/speech
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, short_run, speech_data  # noqa: E402


def run(config: str, data: str, cache: str, steps: int, amp: bool, seed: int, device: str, out: Path
        ) -> tuple[float, float]:
    """(final validation loss, training steps per second)."""
    trainer, seconds = short_run(config, data, cache, steps, device, out, f"train.amp={'true' if amp else 'false'}",
                                 f"train.seed={seed}")
    return float(trainer.last_valid["valid_loss"]), steps / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="speech_cvae")
    ap.add_argument("--data", default=None, help="a speech corpus (default: 80 sentences built in a temp folder)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    header(f"bf16 autocast vs fp32 training, {args.config}, {args.steps} steps")
    with tempfile.TemporaryDirectory() as tmp:
        data = speech_data(args.data, tmp)
        cache = str(Path(tmp) / "cache")
        results = {}
        for name, amp, seed in (("fp32 seed 0", False, 0), ("bf16 seed 0", True, 0), ("fp32 seed 1", False, 1)):
            results[name] = run(args.config, data, cache, args.steps, amp, seed, args.device, Path(tmp) / name)
            print(f"{name}: valid loss {results[name][0]:.4f}, {results[name][1]:.2f} steps/s", flush=True)
    (f0, s0), (b0, sb), (f1, _) = results["fp32 seed 0"], results["bf16 seed 0"], results["fp32 seed 1"]
    noise = max(abs(f0 - f1), 0.01 * abs(f0))
    print(f"bf16 - fp32 valid loss  {b0 - f0:+.4f}  (fp32 seed spread {abs(f0 - f1):.4f}; "
          f"{'within' if abs(b0 - f0) <= noise else 'OUTSIDE'} the noise)")
    print(f"bf16 / fp32 speed       {sb / s0:.2f}x")


if __name__ == "__main__":
    main()

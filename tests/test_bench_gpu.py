"""bench/gpu.py --device cpu --quick: the GPU run's script runs end to end on the CPU, so it cannot rot between runs on
a lent GPU. Its numbers are not judged here (speed lives in benchmarks), its outputs are: every path finite and equal
to itself on the CPU, every training variant trained."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (ROOT / "audiovae" / "assets" / "models" / "music.safetensors").is_file(),
                    reason="the bundled models are not in this checkout")
def test_gpu_bench_quick_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--quick", "--json",
                          str(out)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    paths = result["paths"]
    assert {"front end (log-mel)", "mel-griffin-lim", "conversion", "denoising", "anomaly scoring",
            "music: decode + vocoder"} <= set(paths)
    for name, row in paths.items():
        assert row["finite"], name
        assert row["max_abs_diff"] < 1e-4, name  # built again on the CPU, the same path gives the same output
        assert row["x_realtime_batch1"] > 0 and row["x_realtime_batchN"] > 0, name
    assert result["one_shot"]["finite"] and result["one_shot"]["fit_s"] > 0
    assert set(result["training"]) == {"speech_cvae", "denoise_vae", "vocoder"}
    for config, variants in result["training"].items():
        for key, r in variants.items():
            assert "error" not in r, (config, key, r)
            assert r["audio_s_per_s"] > 0 and r["steps_per_s"] > 0
    assert "conversion" in run.stdout and "audio s/s" in run.stdout

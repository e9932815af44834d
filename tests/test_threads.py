"""numpy's BLAS is bounded once audiovae's front end is loaded (audiovae.threads), and the setting is honoured."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

PROBE = """
import json, numpy as np
from threadpoolctl import threadpool_info
a = np.ones((64, 64)); a @ a  # numpy's BLAS loaded and used before audiovae, as in a user's script
before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
import audiovae.features
after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
print(json.dumps({"before": before, "after": after}))
"""


def _pools(value: str | None) -> dict[str, list[int]]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                            "MKL_NUM_THREADS", "AUDIOVAE_BLAS_THREADS")}
    if value is not None:
        env["AUDIOVAE_BLAS_THREADS"] = value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_blas_bounded_to_one_thread_by_default_and_kept_on_request() -> None:
    default = _pools(None)
    if not default["before"]:
        pytest.skip("numpy's BLAS here is not one threadpoolctl sees (e.g. Accelerate)")
    assert default["after"] and all(n == 1 for n in default["after"])
    kept = _pools("keep")
    assert kept["after"] == kept["before"]
    if (os.cpu_count() or 1) >= 2:  # OpenBLAS caps a pool at the cores there are
        assert all(n == 2 for n in _pools("2")["after"])


def test_unreadable_setting_warns_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    from audiovae import threads

    monkeypatch.setenv(threads.BLAS_THREADS_ENV, "many")
    with pytest.warns(UserWarning, match="AUDIOVAE_BLAS_THREADS='many' ignored"):
        assert threads.blas_threads_setting() == 1
    monkeypatch.setenv(threads.BLAS_THREADS_ENV, "keep")
    assert threads.blas_threads_setting() is None

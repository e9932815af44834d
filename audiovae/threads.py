"""One thread pool for the heavy work: numpy's BLAS is bounded to one thread once audiovae's torch side is loaded.

Why: torch (its OpenMP pool) and OpenBLAS (numpy's and scipy's, used by librosa) each start a thread per core, and
after a call OpenBLAS's workers keep spinning for a while (about 0.1 s) waiting for more. Torch work that starts in
that window shares the cores with them: measured on a 2-core CPU, the log-mel front end ran at a median 849-1,109x
realtime right after a matrix product in numpy, against 2,875-4,080x alone (``bench/frontend.py`` measures both).
A BLAS pool of one thread has no workers to spin, and torch keeps the cores. The cost falls on large matrix products
in numpy, which then use one core (a 1,025 x 391 product: 1.7x the time); audio work in numpy (FFTs, resampling,
filterbanks of a few hundred bands) barely notices.

``AUDIOVAE_BLAS_THREADS``: the bound (default 1); ``keep`` leaves numpy's pools as they are.
"""

from __future__ import annotations

import os
import warnings

BLAS_THREADS_ENV = "AUDIOVAE_BLAS_THREADS"


def blas_threads_setting() -> int | None:
    """The bound asked for: a thread count, or ``None`` for ``keep`` (an unreadable value warns and bounds to one:
    it is read on import, where an error would stop every command)."""
    value = os.environ.get(BLAS_THREADS_ENV, "1").strip().lower()
    if value == "keep":
        return None
    if value.isdecimal() and int(value) > 0:
        return int(value)
    warnings.warn(f"{BLAS_THREADS_ENV}={value!r} ignored (give a number of threads, 1 or more, or keep); using 1",
                  stacklevel=2)
    return 1


def bound_blas_threads() -> int | None:
    """Bound the BLAS libraries loaded so far (numpy's and scipy's OpenBLAS, MKL, BLIS) to
    :func:`blas_threads_setting` threads; torch's own pools (OpenMP, and a BLAS shipped inside torch) are left alone,
    and a BLAS library loaded later is not bounded. Returns the bound applied, or ``None`` when ``keep`` or
    threadpoolctl is not installed."""
    threads = blas_threads_setting()
    if threads is None:
        return None
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # scikit-learn brings it; without it the pools stay as they are
        return None
    import torch

    own = os.path.realpath(os.path.dirname(torch.__file__))  # torch's own BLAS (aarch64 wheels: OpenBLAS) is kept
    for lib in ThreadpoolController().lib_controllers:
        if lib.user_api == "blas" and not os.path.realpath(lib.filepath).startswith(own):
            lib.set_num_threads(threads)
    return threads

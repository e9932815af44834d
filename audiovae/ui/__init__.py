"""``audiovae ui``: a local web page for voice conversion, denoising and music (the ``ui`` extra).

:mod:`~audiovae.ui.studio` does the work through the Python API and needs nothing beyond the core install;
:mod:`~audiovae.ui.server` serves it over HTTP with Starlette and uvicorn.
"""

from __future__ import annotations

from ..errors import ConfigError

EXTRA_HINT = "pip install 'audiovae[ui]'"


def require_extra() -> None:
    """One clear line when the web server's packages are missing."""
    missing = []
    for module in ("starlette", "uvicorn", "multipart"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module if module != "multipart" else "python-multipart")
    if missing:
        raise ConfigError(f"audiovae ui needs the ui extra ({', '.join(missing)} not installed): {EXTRA_HINT}")

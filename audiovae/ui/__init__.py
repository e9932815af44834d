"""``audiovae ui``: a local web page for voice conversion, denoising and music (the ``ui`` extra).

:mod:`~audiovae.ui.studio` does the work through the Python API and needs nothing beyond the core install;
:mod:`~audiovae.ui.server` serves it over HTTP with Starlette and uvicorn.
"""

from __future__ import annotations

from ..errors import ConfigError

EXTRA_HINT = "pip install 'audiovae[ui]'"


def require_extra() -> None:
    """One clear line when the web server's packages are missing."""
    from importlib.util import find_spec

    def have(*modules: str) -> bool:
        try:
            return any(find_spec(m) is not None for m in modules)
        except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules (a blocked import)
            return False

    missing = [package for package, modules in (("starlette", ("starlette",)), ("uvicorn", ("uvicorn",)),
                                                  ("python-multipart", ("python_multipart", "multipart")))
               if not have(*modules)]
    if missing:
        raise ConfigError(f"audiovae ui needs the ui extra ({', '.join(missing)} not installed): {EXTRA_HINT}")

"""Offline corpus builders: each turns packages from Debian/PyPI into audio files, a manifest and a summary."""

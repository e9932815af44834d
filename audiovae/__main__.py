"""``python -m audiovae`` runs the CLI."""

from .cli import main

main()

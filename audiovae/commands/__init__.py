"""The ``audiovae`` commands, one module per task; each registers its commands on the app of :mod:`._shared` when
imported (:mod:`audiovae.cli` imports them all). Command bodies import the library lazily: ``--help`` never loads
torch."""

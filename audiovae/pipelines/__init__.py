"""Inference as library calls: each CLI command is a thin wrapper over one function here."""

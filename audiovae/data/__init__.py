"""Data: manifests, corpus builders (offline, deterministic), dataset layouts and the feature cache."""

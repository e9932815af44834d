"""Objective evaluations of trained models (voice conversion, denoising, reconstruction), apart from inference.

Each module scores a loaded checkpoint on a test set and returns a report with ``table()`` and ``to_dict()``; the
``audiovae evaluate`` commands and the recipes print and save these, so the numbers come from one place.
"""

"""Benchmarks behind ``mowm bench``: a layer above world_model.py (they drive the whole model)."""

"""Faust agents, one module per watched feed; each exposes ``register(app, runtime)``."""

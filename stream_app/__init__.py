"""Streaming benefit-integrity processor: warnings, payment stops and resumes from 4 feeds."""

__version__ = "0.1.0"
__all__ = ["__version__"]

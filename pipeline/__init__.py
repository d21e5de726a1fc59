"""build-gcot: scene graphs -> grounded chain-of-thought examples -> verified, reviewed releases."""

__version__ = "0.1.0"

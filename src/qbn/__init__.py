"""qbn: an experiment framework for binary weight networks (BWN) and sub-bit QBN."""

__version__ = "0.1.0"

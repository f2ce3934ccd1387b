"""Offline analysis: read run and sweep directories, aggregate, plot, write reports."""

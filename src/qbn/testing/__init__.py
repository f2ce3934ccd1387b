"""Helpers shared by the tests (tests/) and the benchmarks (experiments/bench/): composing real
configs, running entry points, run directories without training, small modules for export."""

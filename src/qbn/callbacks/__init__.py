"""The study's instruments: Lightning callbacks that read the model and write into the run directory."""

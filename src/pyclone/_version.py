"""The version of pyclone: the one place it is written (pyproject.toml reads
it from here, setup.py compiles it into the C core)."""
__version__ = "0.2.0"

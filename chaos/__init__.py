"""Fault injection under load (issue 8): ``make chaos``. See ``python -m chaos --help``."""

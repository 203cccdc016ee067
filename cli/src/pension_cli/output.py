"""How operator commands speak: progress bars on long work (to stderr, only on a terminal),
and ID numbers masked in everything printed (``pension_shared.pii.mask_id_numbers``)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def progress() -> Iterator[Progress]:
    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(file=sys.stderr), transient=True, disable=not sys.stderr.isatty(),
    )
    with bars:
        yield bars

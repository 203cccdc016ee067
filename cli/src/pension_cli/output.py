"""How operator commands speak: progress bars on long work (to stderr, only on a terminal),
and ID numbers masked in everything printed."""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pension_shared.pii import mask_id_number

_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")


def mask_id_numbers(text: str) -> str:
    """Mask anything shaped like an 18-character ID number (``1101**********002X``)."""
    return _ID_NUMBER.sub(lambda m: mask_id_number(m.group(0)), text)


@contextmanager
def progress() -> Iterator[Progress]:
    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(file=sys.stderr), transient=True, disable=not sys.stderr.isatty(),
    )
    with bars:
        yield bars

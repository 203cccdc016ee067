"""The benchmark of issue 7: ``make bench`` (``make bench QUICK=1`` for the short run)."""

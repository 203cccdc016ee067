"""Test support for pension_shared: a toy event-sourced "tally" service."""

"""Debian's Chromium, headless, driven by Playwright for Python (Playwright's own browser builds
are never downloaded: ``scripts/ensure-tools.sh`` installs the Debian package)."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from typing import Iterator

from playwright.sync_api import Browser, sync_playwright

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
)


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise AssertionError("Debian's chromium is not installed: run scripts/ensure-tools.sh (apt-get install chromium)")
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=list(CHROMIUM_FLAGS))
        try:
            yield browser
        finally:
            browser.close()

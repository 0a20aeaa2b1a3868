"""Real Chromium for the page tests: the machine's own (Debian's `chromium`, which `.ci/run`
installs), driven by playwright; never a browser downloaded by playwright.

`needs_chromium` skips a module on a machine without it; the `browser` fixture (in
tests/conftest.py) launches it headless for one test."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest


def chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


needs_chromium = pytest.mark.skipif(
    chromium_path() is None,
    reason="no chromium on this machine (Debian: apt-get install chromium); .ci/run installs it")


async def launched_chromium() -> AsyncIterator[Any]:
    """Chromium, headless, for as long as the caller iterates (a fixture's body)."""
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True,
            # Root in a container has no user namespaces for chromium's sandbox.
            args=["--no-sandbox"] if os.geteuid() == 0 else [])
        try:
            yield launched
        finally:
            await launched.close()

"""Debian's chromium, headless, as the tests that open pages run it (Flower, the dashboard)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence

BASE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium(*args: str, flags: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """Run chromium once with a throwaway profile: ``args`` such as ``--dump-dom URL`` or ``--screenshot=...``."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Debian's chromium is not installed: run scripts/setup.sh (it installs it with apt-get)"
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [binary, *BASE_FLAGS, *flags, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

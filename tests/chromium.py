"""Debian's Chromium, as the browser tests start it: headless, and quiet on a closed network
(without the background-networking flags it keeps dialling Google's hosts, refused here)."""

import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def headless(profile: Path | str) -> list[str]:
    """The flags every browser test starts Chromium with, on a new profile directory."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]

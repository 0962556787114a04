"""The SDK's screen parts (discovery, pairing, the session link) ship to devices too: nothing of the hub."""

from __future__ import annotations

import subprocess
import sys


def test_screen_modules_import_only_the_sdk() -> None:
    code = (
        "import sys, tosplus.sdk.discovery, tosplus.sdk.pairing, tosplus.sdk.screen\n"
        "print(sorted(m for m in sys.modules if m.startswith('tosplus') and not m.startswith('tosplus.sdk')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['tosplus']"

"""The SDK ships alone to devices: it must import nothing else from tosplus."""

from __future__ import annotations

import subprocess
import sys


def test_sdk_imports_nothing_else_from_tosplus() -> None:
    code = "import sys, tosplus.sdk\nprint(sorted(m for m in sys.modules if m.startswith('tosplus')))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(
        [
            "tosplus",
            "tosplus.sdk",
            "tosplus.sdk.buffer",
            "tosplus.sdk.client",
            "tosplus.sdk.errors",
            "tosplus.sdk.paycode",
            "tosplus.sdk.payments",
        ]
    )

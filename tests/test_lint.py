"""ruff (80 columns, pyflakes) passes on the whole tree."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert ruff, "ruff is a dev dependency: `pip install -e .[dev]`"
    proc = subprocess.run(
        [ruff, "check", str(ROOT)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:]

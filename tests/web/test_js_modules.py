"""The pages' plain modules (layout, editor model) under Node's own test runner.

``tests/web/js/*.test.mjs`` import ``web/static/js`` directly: no bundler, no npm
packages. Skipped without a ``node`` binary, unless CANVASFLOW_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.services import services_required

JS_TESTS = Path(__file__).parent / "js"


def test_layout_and_editor_model_pass_under_node() -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        if services_required():
            pytest.fail("node is not installed; CANVASFLOW_REQUIRE_SERVICES=1 requires it")
        pytest.skip("node is not installed (apt-get install nodejs)")
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.mjs"))
    assert files
    result = subprocess.run(
        [node, "--test", *files], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout

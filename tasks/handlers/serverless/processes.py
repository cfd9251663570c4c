"""``run: shell|script|container`` as a subprocess of the worker.

Only reached when ``settings.allow_run_tasks`` is on (the interpreter checks
``host.allow_run``). Scripts need inline code; containers need docker on the worker.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import Any

from engine.serverless import WorkflowError


def run_process(kind: str, spec: dict[str, Any], pointer: str) -> dict[str, Any]:
    """``run: shell|script|container``; only called when settings.allow_run_tasks is on."""
    environment = {str(k): str(v) for k, v in (spec.get("environment") or {}).items()}
    if kind == "shell":
        args = spec.get("arguments")
        command = [str(spec.get("command") or "")]
        if isinstance(args, list):
            command += [str(a) for a in args]
        elif isinstance(args, dict):
            command += [f"{k}={v}" for k, v in args.items()]
        argv, shell = (" ".join(command), True)
    elif kind == "script":
        language = str(spec.get("language") or "").lower()
        code = spec.get("code")
        if not isinstance(code, str):
            raise WorkflowError.standard(
                "configuration",
                "run: script needs inline code (external sources are not fetched)",
                instance=pointer,
            )
        if language == "python":
            argv, shell = [sys.executable, "-c", code], False
        elif language in ("js", "javascript") and shutil.which("node"):
            argv, shell = ["node", "-e", code], False
        else:
            raise WorkflowError.standard(
                "configuration",
                f"run: script language {language!r} has no interpreter on this worker",
                instance=pointer,
            )
    else:
        if not shutil.which("docker"):
            raise WorkflowError.standard(
                "configuration",
                "run: container needs docker on the worker, and this worker has none",
                instance=pointer,
            )
        image = str(spec.get("image") or "")
        argv, shell = (
            ["docker", "run", "--rm", image]
            + ([str(spec["command"])] if spec.get("command") else []),
            False,
        )
    try:
        done = subprocess.run(
            argv,
            shell=shell,
            capture_output=True,
            text=True,
            timeout=3600,
            env=environment or None,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WorkflowError.standard(
            "runtime", f"run: {kind} failed: {exc}", instance=pointer
        ) from None
    return {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}

"""`canvasflow run FILE` as a user runs it: a real subprocess on the embedded default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANVASFLOW = Path(sys.executable).parent / "canvasflow"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "CANVASFLOW_DATA_DIR": str(tmp_path / "data"),
        "HOME": str(tmp_path),
    }
    return subprocess.run(
        [str(CANVASFLOW), "run", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_run_dag_waits_prints_output_and_exits_zero(tmp_path: Path) -> None:
    p = run(
        tmp_path,
        str(ROOT / "examples" / "hello.json"),
        "--input",
        '{"name": "Ada", "n": 12}',
        "--wait",
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {
        "greeting": "Hello Ada",
        "result": {"double": 24, "square": 144},
    }
    assert "succeeded" in p.stderr  # the live progress table goes to stderr
    # the same file again updates nothing and runs again; another input takes the other branch
    p = run(
        tmp_path,
        str(ROOT / "examples" / "hello.json"),
        "--input",
        '{"name": "Bo", "n": 2}',
        "--wait",
    )
    assert p.returncode == 0 and json.loads(p.stdout) == {
        "greeting": "Hello Bo",
        "result": "small: 2",
    }


def test_run_serverless_yaml(tmp_path: Path) -> None:
    p = run(tmp_path, str(ROOT / "examples" / "countdown.yaml"), "--input", '{"n": 5}', "--wait")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"message": "counted 5 items"}


def test_run_failing_workflow_exits_one_with_the_error(tmp_path: Path) -> None:
    wf = tmp_path / "fail.json"
    wf.write_text(
        json.dumps(
            {
                "nodes": [
                    {"id": "s", "type": "start"},
                    {"id": "t", "type": "transform", "config": {"expression": 'error("boom")'}},
                    {"id": "e", "type": "end"},
                ],
                "edges": [{"source": "s", "target": "t"}, {"source": "t", "target": "e"}],
            }
        )
    )
    p = run(tmp_path, str(wf), "--wait")
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert (
        out["status"] == "failed"
        and out["error"]["node_id"] == "t"
        and "boom" in out["error"]["message"]
    )


def test_run_invalid_workflow_lists_every_problem(tmp_path: Path) -> None:
    wf = tmp_path / "bad.json"
    wf.write_text(
        json.dumps(
            {
                "nodes": [{"id": "s", "type": "start"}, {"id": "x", "type": "teleport"}],
                "edges": [{"source": "s", "target": "ghost"}],
            }
        )
    )
    p = run(tmp_path, str(wf), "--wait")
    assert p.returncode != 0
    assert "teleport" in p.stderr and "ghost" in p.stderr and "end" in p.stderr


def test_run_rejects_bad_input_json(tmp_path: Path) -> None:
    p = run(tmp_path, str(ROOT / "examples" / "hello.json"), "--input", "{nope", "--wait")
    assert p.returncode != 0 and "--input is not valid JSON" in p.stderr

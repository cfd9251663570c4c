"""Which steps a node's expressions read: the claim loads only those rows."""

from __future__ import annotations

import json
from pathlib import Path

from engine.formats.dag import load_dag
from engine.runs.cache import _needs

ROOT = Path(__file__).resolve().parents[2]


def test_needs_lists_the_steps_each_node_reads() -> None:
    needs = _needs(load_dag(json.loads((ROOT / "examples" / "hello.json").read_text())))
    assert needs["greet"] == frozenset()
    assert needs["is_big"] == needs["double"] == needs["end"] == frozenset({"greet"})


def test_needs_is_none_when_a_node_reads_all_steps() -> None:
    doc = {
        "nodes": [
            {"id": "s", "type": "start"},
            {"id": "t", "type": "transform", "config": {"expression": ".steps | keys"}},
            {"id": "e", "type": "end"},
        ],
        "edges": [{"source": "s", "target": "t"}, {"source": "t", "target": "e"}],
    }
    assert _needs(load_dag(doc))["t"] is None

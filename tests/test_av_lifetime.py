"""PyAV objects are used only while their container is open.

PyAV 18.1.1 refuses to read a stream's properties after its container is closed ("Container is
not open"); earlier releases allowed it. This scans the project's own code for a stream or
container taken inside ``with av.open(...)`` and read after the block, so the mistake is found on
any PyAV version, not only on the newest one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STREAM_EXPR = re.compile(r"^\w+\.streams(\.\w+)?(\[\d+\])?$")


def _av_names(block: ast.With) -> set[str]:
    """Names that hold a container or stream object inside one ``with av.open(...)`` block."""
    names = {it.optional_vars.id for it in block.items if isinstance(it.optional_vars, ast.Name)}
    for node in ast.walk(block):
        if isinstance(node, ast.Assign) and STREAM_EXPR.match(ast.unparse(node.value)):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _late_reads(stmts: list[ast.stmt]) -> list[tuple[int, str]]:
    """(line, name) of av objects read after the ``with`` block that opened them, in one statement list."""
    found = []
    for i, stmt in enumerate(stmts):
        if isinstance(stmt, ast.With) and any("av.open" in ast.unparse(it.context_expr) for it in stmt.items):
            held = _av_names(stmt)
            for later in stmts[i + 1 :]:
                rebound = isinstance(later, ast.With) and _av_names(later) & held
                if rebound:
                    break
                for node in ast.walk(later):
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in held:
                        found.append((node.lineno, node.id))
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                found += _late_reads(inner)
    return found


def _scan(source: str) -> list[tuple[int, str]]:
    """Late reads anywhere in a module: functions and classes are reached through their ``body``."""
    return sorted(set(_late_reads(ast.parse(source).body)))


def test_the_scan_finds_a_stream_read_after_its_container_closed():
    bad = "def f(p):\n    with av.open(p) as c:\n        s = c.streams.video[0]\n    return s.average_rate\n"
    good = bad.replace("    return s.average_rate", "        rate = s.average_rate\n    return rate")
    assert _scan(bad) == [(4, "s")]
    assert _scan(good) == []


def test_no_project_file_reads_a_pyav_object_after_closing_it():
    files = [p for folder in ("src", "tests", "benchmarks", "tools") for p in (ROOT / folder).rglob("*.py")]
    late = [f"{p.relative_to(ROOT)}:{line} reads {name}" for p in files for line, name in _scan(p.read_text())]
    assert not late, late

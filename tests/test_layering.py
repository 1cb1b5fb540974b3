"""The room rules of docs/DESIGN (a folder of asrkit/ is a room): who may import whom.

Every ``import asrkit.X`` / ``from asrkit.X import`` in every module counts, also
those inside functions (a lazy import is still a dependency).
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "asrkit"


def _room_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports() -> dict[str, set[tuple[str, str]]]:
    """room -> {(imported name, importing module)} for every asrkit.* or external import."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for f in sorted(ROOT.rglob("*.py")):
        module = ".".join(("asrkit", *f.relative_to(ROOT).with_suffix("").parts))
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + ([f"asrkit.{a.name}" for a in node.names] if node.module == "asrkit" else [])
            else:
                continue
            for name in names:
                found[_room_of(f)].add((name, module))
    return found


IMPORTS = _imports()


def _rooms(room: str) -> dict[str, list[str]]:
    """The other asrkit rooms ``room`` imports -> the modules that do."""
    out: dict[str, list[str]] = defaultdict(list)
    for name, module in IMPORTS[room]:
        parts = name.split(".")
        if parts[0] == "asrkit" and len(parts) > 1 and parts[1] != room:
            out[parts[1]].append(module)
    return out


def test_the_graph_sees_imports():
    assert "asrkit" in {n.split(".")[0] for n, _ in IMPORTS["decode"]}
    assert "data" in _rooms("decode") and "nn" in _rooms("models")


@pytest.mark.parametrize("room, forbidden", [
    ("data", "features"),      # features writes data formats: the dependency goes features -> data only
    ("data", "decode"),
    ("data", "train"),
    ("decode", "train"),       # saved configs come from asrkit.config
    ("decode", "pipeline"),    # pipeline sits above decode
    ("score", "models"), ("score", "nn"), ("score", "decode"), ("score", "train"),
    ("lm", "models"), ("lm", "nn"), ("lm", "decode"), ("lm", "train"),
    ("models", "cli"), ("models", "train"), ("models", "decode"),
    ("nn", "models"),
    ("train", "models"),       # the loop knows no model: tasks build them
    ("tasks", "train"),        # tasks plug into the trainer, which finds them through the registry
])
def test_room_does_not_import(room, forbidden):
    found = sorted(set(_rooms(room)[forbidden]) - EXCEPTIONS.get((room, forbidden), set()))
    assert not found, f"{room} imports {forbidden} in {found}"


#: the one module of a room that may import a forbidden one: the neural LM front end of lm/
#: (loading an exp dir is models' job; the n-gram code stays free of torch models)
EXCEPTIONS = {("lm", "models"): {"asrkit.lm.neural"}}


def test_the_exceptions_are_used():
    for (room, forbidden), modules in EXCEPTIONS.items():
        assert modules <= set(_rooms(room)[forbidden]), f"{room} -> {forbidden}: {modules} is no longer needed"


def test_no_room_imports_cli_or_pipeline_but_cli():
    for room in IMPORTS:
        if room in ("cli", "__main__", "pipeline"):
            continue
        assert "cli" not in _rooms(room), f"{room} imports cli"
        assert "pipeline" not in _rooms(room), f"{room} imports pipeline"


def test_nn_imports_only_torch_and_the_standard_library():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for name, module in IMPORTS["nn"]:
        top = name.split(".")[0]
        assert top in stdlib or top == "torch" or name.startswith("asrkit.nn"), f"{module} imports {name}"


def test_no_cycle_between_rooms_below_cli():
    graph = {room: set(_rooms(room)) - {"cli", "__main__"} for room in IMPORTS if room not in ("cli", "__main__")}
    for a, targets in graph.items():
        for b in targets:
            assert a not in graph.get(b, set()), f"{a} and {b} import each other"


def test_train_imports_no_task_by_name():
    """The trainer reaches tasks only through the registry and the base class
    (``asrkit.tasks`` / ``asrkit.tasks.base``: get_task, Task, ...), never a
    task's own module or class."""
    api = {"TASKS", "Task", "get_task", "task_names", "register_task", "dev_batches", "gather"}
    seen = 0
    for f in sorted((ROOT / "train").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    assert not a.name.startswith("asrkit.tasks."), f"{f.name} imports {a.name}"
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("asrkit.tasks"):
                assert node.module in ("asrkit.tasks", "asrkit.tasks.base"), f"{f.name} imports {node.module}"
                names = {a.name for a in node.names}
                assert names <= api, f"{f.name} imports {sorted(names - api)} from {node.module}"
                seen += 1
    assert seen  # the rule looks at real imports

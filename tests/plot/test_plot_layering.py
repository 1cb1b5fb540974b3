"""The plot room's imports: no model, layer, task or trainer code (a model comes in through a loaded
exp dir), nothing above it (cli, pipeline), and torch/matplotlib only inside functions (so that
`asrkit --help` and `import asrkit.plot` stay fast). Lazy imports count as dependencies."""
from __future__ import annotations

import ast
from pathlib import Path

ROOM = Path(__file__).resolve().parents[2] / "asrkit" / "plot"
FORBIDDEN = ("models", "nn", "tasks", "train", "cli", "pipeline")
HEAVY = ("torch", "matplotlib")


def _imports(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            if node.module == "asrkit":
                names += [f"asrkit.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"relative import in asrkit/plot (line {node.lineno}); the project imports by name")
    return names


def _modules() -> dict[str, ast.Module]:
    files = sorted(ROOM.rglob("*.py"))
    assert len(files) >= 3, files  # __init__, attention, decoded at least: the walk sees the room
    return {str(f.relative_to(ROOM)): ast.parse(f.read_text(encoding="utf-8")) for f in files}


def test_the_walk_sees_imports():
    found = {n for tree in _modules().values() for n in _imports(tree)}
    assert "asrkit.io" in found and "numpy" in found and "matplotlib.figure" in found


def test_no_model_layer_task_trainer_or_cli_code():
    for name, tree in _modules().items():
        for imported in _imports(tree):
            parts = imported.split(".")
            assert not (parts[0] == "asrkit" and len(parts) > 1 and parts[1] in FORBIDDEN), (
                f"asrkit/plot/{name} imports {imported}")


def test_torch_and_matplotlib_only_inside_functions():
    for name, tree in _modules().items():
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        for imported in _imports(ast.Module(body=top, type_ignores=[])):
            assert imported.split(".")[0] not in HEAVY, f"asrkit/plot/{name} imports {imported} at module level"

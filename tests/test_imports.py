"""Imports run one way, down the data flow (DESIGN.md): cli -> api -> train/evaluate/report ->
methods -> objectives/views -> backbones/data/distributed and the low modules. This walks every
module's imports and fails on one that reaches up, or across between train and evaluate."""

from __future__ import annotations

import ast
from pathlib import Path

import selfsup

PACKAGE = Path(selfsup.__file__).parent

# a higher number may import a lower one; equal numbers only within the same part
LEVEL = {
    "rundir": 0, "hardware": 0, "collapse": 0, "distributed": 0,
    "data": 1, "backbones": 1,
    "degradations": 1,  # noise models and other corruptions of images, for any stage above
    "views": 2, "objectives": 2,
    "methods": 3,
    "train": 4, "evaluate": 4,
    "report": 5,
    "export": 5.5,  # at the api's level (api may import it); below it, as equal parts may not
    "guard": 5.5,  # trains and evaluates, as the api does; the cli reads its budget
    "api": 6,
    "__init__": 6.5,  # the package re-exports the api
    "console": 6.8,  # what the cli prints
    "cli": 7,
}


def part_of(module: str) -> str:
    """'selfsup.train.run' -> 'train'; 'selfsup' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> list[tuple[str, int]]:
    """The selfsup modules a file imports, absolute, with their line numbers."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts if path.name == "__init__.py" else rel.parts[:-1])
    if path.name == "__init__.py":
        package = package[:-1] if package[-1] == "__init__" else package
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            for name in names if target.count(".") == 0 else [target]:
                if name.startswith("selfsup"):
                    found.append((name, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("selfsup")]
    return found


def test_every_part_has_a_level():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").is_file()))}
    assert parts - {"__main__"} <= set(LEVEL), sorted(parts - set(LEVEL))


def test_imports_run_one_way():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        here = part_of(module.removesuffix(".__init__") if module != "selfsup.__init__"
                       else "selfsup")
        for target, line in imports_of(path):
            there = part_of(target)
            if there == here or there not in LEVEL:
                continue
            if LEVEL[there] >= LEVEL[here]:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} ({here}) imports {target}")
    assert not upward, "imports that reach up or across:\n" + "\n".join(upward)


def test_the_walker_sees_relative_imports():
    found = dict(imports_of(PACKAGE / "train" / "run.py"))
    assert "selfsup.methods" in found and "selfsup.rundir" in found

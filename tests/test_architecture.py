"""The direction of imports, read from the project's own source with ast.

playground → elevenlabs → sessions → voiceagent's shared layer, which imports no app; the
project's top (settings, urls, asgi, wsgi, its views and API error handler) may import any app.
The simulated agent is an app of its own that only the project's top knows. An import inside
a function counts like any other: it is where cycles hide.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("voiceagent", "sessions", "elevenlabs", "playground")
APPS = ("sessions", "elevenlabs", "playground")
SIMULATOR = "elevenlabs.simulator"
# The project's top: it wires the apps together and may import any of them.
PROJECT_TOP = {
    "voiceagent.settings",
    "voiceagent.urls",
    "voiceagent.asgi",
    "voiceagent.wsgi",
    "voiceagent.routing",
    "voiceagent.views",
    "voiceagent.api",
}
# Who may import the simulator besides itself.
SIMULATOR_IMPORTERS = {"voiceagent.settings", "voiceagent.urls", "voiceagent.asgi", "voiceagent.routing"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                modules[module_name(path)] = path
    return modules


MODULES = project_modules()


def resolve(name: str) -> str | None:
    """The project module ``name`` refers to (a module, or an attribute of one), or None if it is not ours."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """Every project module ``module`` imports (anywhere in the file), with the line."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module; `from module import name` the module.
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = resolve(name)
            if target and target != module:
                yield target, node.lineno


GRAPH = {module: {target for target, _ in imports_of(module)} for module in MODULES}


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(rule) -> list[str]:
    found = []
    for module in sorted(MODULES):
        for target, line in imports_of(module):
            if rule(module, target):
                found.append(f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}")
    return found


def test_the_graph_sees_the_project():
    assert {"sessions.models", "elevenlabs.client", "playground.views", "voiceagent.settings"} <= set(MODULES)
    assert "sessions.models" in GRAPH["playground.views"] or any(
        "sessions" in target for target in GRAPH["playground.views"]
    )


def test_no_module_takes_part_in_an_import_cycle():
    # Tarjan's strongly connected components: any component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert cycles == []


def domain_reaching_up(module: str, target: str) -> bool:
    return in_package(module, "sessions") and (in_package(target, "elevenlabs") or in_package(target, "playground"))


def integration_reaching_the_page(module: str, target: str) -> bool:
    return in_package(module, "elevenlabs") and in_package(target, "playground")


def shared_layer_reaching_an_app(module: str, target: str) -> bool:
    shared = in_package(module, "voiceagent") and module not in PROJECT_TOP
    return shared and any(in_package(target, app) for app in APPS)


def simulator_known_outside_the_top(module: str, target: str) -> bool:
    outsider = not in_package(module, SIMULATOR) and module not in SIMULATOR_IMPORTERS
    return in_package(target, SIMULATOR) and outsider


def test_the_domain_knows_no_vendor_and_no_page():
    assert violations(domain_reaching_up) == []


def test_the_integration_knows_no_page():
    assert violations(integration_reaching_the_page) == []


def test_the_shared_layer_imports_no_app():
    assert violations(shared_layer_reaching_an_app) == []


def test_only_the_project_top_knows_the_simulator():
    assert violations(simulator_known_outside_the_top) == []


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from sessions.models import VoiceSession", {"sessions.models"}),
        ("import elevenlabs.client", {"elevenlabs.client"}),
        ("def f():\n    from elevenlabs import client\n", {"elevenlabs.client"}),
    ],
)
def test_the_reader_finds_imports_anywhere_in_a_file(tmp_path, monkeypatch, source, expected):
    probe = ROOT / "voiceagent" / "_architecture_probe.py"
    probe.write_text(source, encoding="utf-8")
    try:
        monkeypatch.setitem(MODULES, "voiceagent._architecture_probe", probe)
        assert {target for target, _ in imports_of("voiceagent._architecture_probe")} == expected
    finally:
        probe.unlink()

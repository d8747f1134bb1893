"""The package's layering: no module imports from a layer above its own, and no cycles.

Each top-level module or sub-package of `catface_keras` sits in one layer; an
import (at module level or inside a function) may reach its own layer or the
ones below. A new top-level module must be placed here.

The package's `__init__` (`<root>`) is its facade and sits on top: it imports
`serializable`, which registers every saved class with Keras. No module inside
imports the facade; `from catface_keras import degrade` imports the sub-package
`degrade` (Python runs `__init__` first for every import, which is no dependency
of the design).
"""

import ast
import collections
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "catface_keras"

# Lowest first.
LAYERS = [
    {"choices", "soft_biometrics", "atomic_files", "progress", "degradation_config",
     "precision", "unit_vectors", "landmark_alignment"},
    {"data", "degrade", "distribution"},
    {"config", "layers", "losses"},
    {"backbones", "weights"},
    {"models"},
    {"serializable"},
    {"evaluation", "alignment", "export", "visualization"},
    {"run_directory", "callbacks", "trainer", "ablation"},
    {"cli"},
    {"<root>"},
]


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_part(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def import_graph():
    """module -> the `catface_keras` modules it imports, anywhere in its code."""
    graph = collections.defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        module = module_name(path)
        graph[module]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from catface_keras import degrade` imports `degrade`, not the facade.
                names = [node.module] if node.module != "catface_keras" else []
                # `from catface_keras.models import stage1_training` imports a module too.
                names += [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            graph[module].update(
                name for name in names
                if name.startswith("catface_keras") and _exists(name)
            )
    return graph


def _exists(module):
    path = ROOT.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def layer_of(part):
    for index, members in enumerate(LAYERS):
        if part in members:
            return index
    raise AssertionError(f"catface_keras.{part} is in no layer: add it to LAYERS in {__file__}")


def find_cycle(graph):
    """A list of modules forming a cycle, or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == "open":
                return stack[stack.index(child):] + [child]
            if child not in state:
                cycle = visit(child)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_module_imports_from_a_layer_above():
    upward = []
    for module, imported in import_graph().items():
        for target in imported:
            source_part, target_part = package_part(module), package_part(target)
            if layer_of(target_part) > layer_of(source_part):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_cycles_between_modules_or_packages():
    graph = import_graph()
    # A package's __init__ importing its own modules is not a cycle of the design.
    modules = {
        module: {t for t in targets if not module.startswith(t + ".") and t != module}
        for module, targets in graph.items()
    }
    assert find_cycle(modules) is None
    parts = collections.defaultdict(set)
    for module, targets in graph.items():
        parts[package_part(module)].update(
            package_part(t) for t in targets if package_part(t) != package_part(module)
        )
    assert find_cycle(parts) is None


def test_the_facade_only_imports_the_registration():
    assert import_graph()["catface_keras"] == {"catface_keras.serializable"}
    assert layer_of("<root>") == len(LAYERS) - 1


def test_the_checks_find_what_they_look_for():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("cli") > layer_of("models") > layer_of("layers")

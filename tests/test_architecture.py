"""ganlib's layout stays readable: no import cycle, the command line apart, every module says what it is for.

The import graph is read from the source with ``ast``: every ``import ganlib...`` and
``from ganlib... import ...``, at the top of a module or deferred inside a function, is an edge.
"""

import ast
import re

import pytest

from conftest import ROOT

PACKAGE = ROOT / "ganlib"
CLI = "ganlib.cli"
MAX_LINES = 800



def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name):
    return MODULES[name].name == "__init__.py"


def _target(name):
    """The ganlib module an imported dotted name refers to (the longest prefix that is a module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name):
    """The ganlib modules that module ``name`` imports, at any depth of its code."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {_target(a.name) for a in node.names if a.name.split(".")[0] == "ganlib"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # a relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "ganlib":
                continue
            for a in node.names:  # `from ganlib.grading import questions` imports the submodule
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else _target(base))
    found.discard(None)
    found.discard(name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def _is_cli(name):
    return name == CLI or name.startswith(CLI + ".") or name == "ganlib.__main__"


def find_cycle(graph, ignore=()):
    """One import cycle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if (u, v) in ignore:
                continue
            if state.get(v) == "open":
                return stack[stack.index(v):] + [v]
            if v not in state:
                cycle = visit(v)
                if cycle:
                    return cycle
        stack.pop()
        state[u] = "done"
        return None

    for u in sorted(graph):
        if u not in state:
            cycle = visit(u)
            if cycle:
                return cycle
    return None


def test_the_walker_sees_deferred_and_relative_imports():
    assert "ganlib.theory" in GRAPH["ganlib.data"]                 # top level
    assert "ganlib.metrics" in GRAPH["ganlib.data"]                # inside a function
    assert "ganlib.grading.questions" in GRAPH["ganlib.grading.worker"]  # `from package import submodule`
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_library_never_imports_the_command_line():
    bad = sorted((u, v) for u, vs in GRAPH.items() if not _is_cli(u) for v in vs
                 if _is_cli(v))
    assert not bad, "library modules import the command line: " + ", ".join(f"{u} -> {v}" for u, v in bad)
    importers = {u for u, vs in GRAPH.items() for v in vs if v.startswith(CLI)} - {u for u in GRAPH if _is_cli(u)}
    assert not importers, importers


CHAPTER = re.compile(r"\b(chapters?|appendix)\s+(\d\d|[A-Z])\b", re.IGNORECASE)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_says_what_it_is_for_and_its_chapter(name):
    source = MODULES[name].read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source))
    assert doc and len(doc.split("\n\n")[0]) >= 20, f"{name} needs a docstring that says what it is for"
    assert CHAPTER.search(doc), f"{name}'s docstring should name the chapter that introduces it"
    lines = source.count("\n")
    if lines > MAX_LINES:
        assert re.search(r"about\s+[\d,]+\s+lines", doc, re.IGNORECASE), (
            f"{name} has {lines} lines: split it, or say in its docstring why it is longer (\"about N lines: ...\")")


def test_the_package_docstring_lists_every_module():
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8")))
    top = {name.split(".")[1] for name in MODULES if name.count(".") >= 1} - {"__main__"}
    missing = sorted(m for m in top if not re.search(rf"^{m}\s", doc, re.M))
    assert not missing, f"ganlib/__init__.py's module list lacks {missing}"


def test_the_readme_map_names_every_module():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Inside ganlib", 1)[1].split("\n## ", 1)[0]
    top = {name.split(".")[1] for name in MODULES if name.count(".") >= 1} - {"__main__"}
    missing = sorted(m for m in top if f"`{m}" not in section)
    assert not missing, f"the README's 'Inside ganlib' map lacks {missing}"

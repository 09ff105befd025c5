"""The project's own checks: ruff and mypy must be clean (configured in pyproject.toml), and
no test file imports from another test file."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_ruff_clean() -> None:
    result = _run("ruff", "check", "aiotls", "tests", "examples", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_clean() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


# --- tests never import from another test file ------------------------------------------------

TESTS = os.path.join(ROOT, "tests")


def _test_module(name: str | None) -> bool:
    """Whether a dotted module name is a test file (``tests.test_x``, or ``test_x`` relative)."""
    if not name:
        return False
    parts = name.split(".")
    if parts[0] == "tests":
        parts = parts[1:]
    return bool(parts) and parts[0].startswith("test_")


def imports_of_test_files(source: str, filename: str = "<source>") -> list[str]:
    """Every import in ``source`` that reaches a ``tests/test_*.py`` module, as
    ``"line N: module"``: ``import tests.test_x``, ``from tests.test_x import y``,
    ``from tests import test_x``, relative forms (``from .test_x import y``, ``from . import
    test_x``), and ``importlib.import_module("tests.test_x")``/``__import__`` with a literal
    name -- at module level or inside a function."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level or base == "tests":  # from . import test_x / from tests import test_x
                names = [f"{base}.{alias.name}".lstrip(".") for alias in node.names]
            names.append(base)
        elif isinstance(node, ast.Call) and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__"):
                names = [node.args[0].value]
        found += [f"line {node.lineno}: {name}" for name in names if _test_module(name)]
    return found


def test_no_test_file_imports_another_test_file() -> None:
    """Shared helpers live in helper modules (tests/helpers.py, and the peers and tools in
    certs.py, sockloop.py, peers.py, tlslite_peer.py, stdlib_peer.py, asyncio_memory.py;
    fixtures in conftest.py, which no test imports): a test file importing
    another one runs that file's module-level code, couples unrelated tests, and hides
    helpers where nobody looks for them."""
    offenders = {}
    for name in sorted(os.listdir(TESTS)):
        if name.endswith(".py"):
            path = os.path.join(TESTS, name)
            with open(path, encoding="utf-8") as f:
                found = imports_of_test_files(f.read(), path)
            if found:
                offenders[name] = found
    assert offenders == {}, offenders


def test_the_import_check_sees_every_form() -> None:
    """The check above is not vacuous: each way of reaching a test module is caught, and
    helper modules (including names that merely contain ``test``) are not."""
    caught = [
        "from tests.test_verify import StdlibPeer",
        "import tests.test_verify",
        "import tests.test_verify as tv",
        "from tests import certs, test_verify",
        "from .test_verify import run",
        "from . import test_verify",
        "def f():\n    from tests.test_verify import run\n",
        "importlib.import_module('tests.test_verify')",
        "__import__('tests.test_verify')",
    ]
    for source in caught:
        assert imports_of_test_files(source) != [], source
    assert imports_of_test_files("def f():\n    from tests.test_a import x\n") == \
        ["line 2: tests.test_a"]
    for source in ["from tests.helpers import PKI", "from tests.stdlib_peer import run",
                   "import tests.tlslite_peer", "from tests import certs, sockloop",
                   "from . import conftest", "from tests.latest import x",
                   "import pytest", "print('tests.test_verify')"]:
        assert imports_of_test_files(source) == [], source


def test_no_test_file_imports_conftest() -> None:
    """Helpers come from tests/helpers.py; conftest.py only holds fixtures and hooks."""
    offenders = []
    for name in sorted(os.listdir(TESTS)):
        if name.endswith(".py") and name != "conftest.py":
            with open(os.path.join(TESTS, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) \
                    else [node.module or ""] + [alias.name for alias in node.names] \
                    if isinstance(node, ast.ImportFrom) else []
                if any(m.split(".")[-1] == "conftest" for m in modules):
                    offenders.append(f"{name}:{node.lineno}")
    assert offenders == []

"""The README and docs/ stay honest: short README, working links, true commands.

- README.md is for users and stays within 300 lines; depth goes to docs/.
- Every relative link in README.md, CONTRIBUTING.md, CHANGELOG.md and docs/*.md points to a file that exists, and a
  ``#fragment`` to a heading that exists in the target Markdown file.
- The README's test command is the one .ci/run runs, after installing at least the README's
  extras.
- Every page under docs/ is in mkdocs.yml's nav and every nav entry exists; the API
  reference renders each public module.
- Every ``python -m aiotls COMMAND --option`` written in README.md or docs/ names a command
  and options the command line really has.
- The README's Python examples run and print what their comments say, with a throwaway PKI
  in place of ca.pem/cert.pem/key.pem and a free loopback port in place of 8443.
- The README's framework snippets (``py`` blocks) name the example script they come from,
  and every call and keyword argument they show is used in that script, which
  tests/test_examples.py runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import socket
from pathlib import Path

import pytest

from aiotls.cli import build_parser
from aiotls.testing import generate_pki

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CI = ROOT / ".ci" / "run"
MAX_README_LINES = 300

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def markdown_files() -> list[Path]:
    return [README, ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans (links there are not links)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for heading in _HEADING.findall(_FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def relative_links(path: Path) -> list[str]:
    return [target for target in _LINK.findall(_prose(path.read_text(encoding="utf-8")))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]  # not http:, https:, mailto:


def test_docs_exist() -> None:
    assert DOCS.is_dir()
    assert (DOCS / "index.md").is_file()
    assert len(markdown_files()) > 2


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move depth to docs/")


def test_readme_links_every_docs_page() -> None:
    linked = {(README.parent / t.split("#")[0]).resolve() for t in relative_links(README)}
    missing = [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link to: {missing}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    links = relative_links(path)
    broken = []
    for target in links:
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if ROOT not in dest.parents and dest != ROOT:
            broken.append(f"{target} (outside the repository)")
        elif not dest.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target} (no heading #{fragment} in {dest.name})")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {broken}"


def test_link_checker_sees_links_and_anchors() -> None:
    # The checks above must not pass by finding nothing.
    assert "docs/guide.md" in relative_links(README)
    assert "examples/sansio_pair.py" in relative_links(README)
    assert "eof-and-truncation" in anchors(DOCS / "guide.md")
    assert _slug("Post-handshake client authentication (TLS 1.3)") == (
        "post-handshake-client-authentication-tls-13")
    assert _slug("Speed-ups to tlslite-ng's handshake code") == (
        "speed-ups-to-tlslite-ngs-handshake-code")


def quick_start_commands() -> list[str]:
    """The shell commands of the README's Quick start, in order (comments dropped)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the Quick start has no ```bash block"
    return [line.strip() for line in block.group(1).splitlines()
            if line.strip() and not line.strip().startswith("#")]


def ci_commands() -> list[str]:
    return [line.strip() for line in CI.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _pip_install_extras(command: str) -> str:
    """The ``-e`` target of a pip install command (``.[test]``)."""
    words = shlex.split(command)
    assert "pip" in words and "install" in words, command
    return words[words.index("-e") + 1]


def _split_extras(target: str) -> tuple[str, set[str]]:
    """``.[test,docs]`` -> ``(".", {"test", "docs"})``."""
    m = re.fullmatch(r"([^\[]+)(?:\[([^\]]*)\])?", target)
    assert m, target
    return m.group(1), {e.strip() for e in (m.group(2) or "").split(",") if e.strip()}


def test_quick_start_has_the_demo_and_the_test_command() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2, commands
    demo, tests = ([part.strip() for part in c.split("&&")] for c in commands)
    assert demo[-1] == "python -m aiotls demo"
    assert tests[-1].split()[:3] == ["python", "-m", "pytest"]


def test_readme_test_command_is_what_ci_runs() -> None:
    install, test_command = (part.strip() for part in quick_start_commands()[1].split("&&"))
    ci = ci_commands()
    assert test_command in ci, (
        f"the README's test command {test_command!r} is not a command of .ci/run")
    ci_installs = [c for c in ci if " pip install" in f" {c}" and " -e " in c]
    assert ci_installs, ".ci/run installs no package in editable mode"
    # CI installs at least the README's extras (and may add some, e.g. docs for the site).
    readme_target, readme_extras = _split_extras(_pip_install_extras(install))
    for command in ci_installs:
        target, extras = _split_extras(_pip_install_extras(command))
        assert target == readme_target, command
        assert readme_extras <= extras, f"{command!r} lacks extras {readme_extras - extras}"
    # ...and the install comes first.
    assert ci.index(ci_installs[-1]) < ci.index(test_command)


def _cli_options() -> dict[str, set[str]]:
    parser = build_parser()
    options = {"": {s for a in parser._actions for s in a.option_strings}}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                options[name] = {s for a in sub._actions for s in a.option_strings}
    # (``certs create`` has its own parser: aiotls.cli.main routes it there)
    from aiotls.cli import certs_create
    options["certs create"] = {s for a in certs_create._parser()._actions
                               for s in a.option_strings}
    return options


def test_documented_cli_commands_exist() -> None:
    options = _cli_options()
    every_command = set.intersection(*options.values())  # valid wherever COMMAND stands
    found = 0
    wrong = []
    for path in markdown_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            # (``python -m aiotls.tickets``: tests/test_multiprocess.py checks those)
            for m in re.finditer(r"python -m aiotls(?![\w.])(?: ([A-Za-z][\w-]*))?([^`#]*)",
                                 line):
                found += 1
                command = m.group(1) or ""
                if command == "certs" and m.group(2).startswith(" create"):
                    command = "certs create"
                if command.isupper():  # a placeholder, e.g. "python -m aiotls COMMAND --help"
                    known = every_command
                elif command in options:
                    known = options[command] | options[""]
                else:
                    wrong.append(f"{path.name}: unknown command {command!r} in {line.strip()!r}")
                    continue
                for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", m.group(0)):
                    if flag not in known:
                        wrong.append(f"{path.name}: {command} has no {flag} ({line.strip()!r})")
    assert found >= 5
    assert not wrong, "\n".join(wrong)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_readme_python_examples_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 2, "expected the sans-IO and the asyncio example"
    pki = generate_pki(tmp_path)
    port = str(_free_port())
    out = io.StringIO()
    for block in blocks:
        assert '"ca.pem"' in block or '"cert.pem"' in block
        code = (block.replace('"ca.pem"', repr(pki.ca_file))
                .replace('"cert.pem"', repr(pki.cert_file))
                .replace('"key.pem"', repr(pki.key_file))
                .replace("8443", port))
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    lines = out.getvalue().splitlines()
    assert lines == [
        "handshake: TLSv1.3 TLS_AES_256_GCM_SHA384 x25519",  # as the README's comments say
        "got b'hello'",
        "TLSv1.3 ('TLS_AES_256_GCM_SHA384', 'TLSv1.3', 256)",
        "b'hello\\n'",
    ], lines


def test_readme_framework_snippets_come_from_tested_examples() -> None:
    blocks = re.findall(r"```py\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 5, "expected a snippet per framework"
    for block in blocks:
        first, _, code = block.partition("\n")
        source = re.match(r"# (examples/\S+\.py)", first)
        assert source, f"a framework snippet must name its example script: {first!r}"
        example = (ROOT / source.group(1)).read_text(encoding="utf-8")
        calls = {m.split(".")[-1] for m in re.findall(r"([A-Za-z_][\w.]*)\(", code)}
        keywords = set(re.findall(r"\b(\w+)=", code))
        assert calls and keywords
        missing = sorted(name for name in calls if f"{name}(" not in example)
        missing += sorted(f"{k}=" for k in keywords if f"{k}=" not in example)
        assert not missing, f"{source.group(1)} does not use {missing}"


# --- the docs site: mkdocs.yml's nav and docs/ agree ----------------------------------------

MKDOCS = ROOT / "mkdocs.yml"
_NAV_TARGET = re.compile(r"^\s*-\s+(?:[^:\n]*:\s+)?(?P<target>[^\s:#]+\.md)\s*(?:#.*)?$")


def nav_entries(config: str) -> list[str]:
    """The page paths in mkdocs.yml's ``nav:`` (a tiny line parser: no YAML library needed).

    The nav is the top-level ``nav:`` key; it ends at the next top-level key.  Each entry is
    ``- page.md`` or ``- Title: page.md``; sections (``- Title:`` alone) are skipped.
    """
    entries: list[str] = []
    inside = False
    for line in config.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace() and not line.startswith("-"):
            inside = line.split(":", 1)[0].strip() == "nav"
            continue
        if inside and (m := _NAV_TARGET.match(line)):
            entries.append(m.group("target"))
    return entries


def _excluded_docs(config: str) -> list[str]:
    """The ``exclude_docs:`` patterns (a block scalar of gitignore-style lines)."""
    patterns: list[str] = []
    inside = False
    for line in config.splitlines():
        if not line[:1].isspace():
            inside = line.startswith("exclude_docs:")
            continue
        if inside and line.strip():
            patterns.append(line.strip())
    return patterns


def site_pages() -> list[str]:
    """Every Markdown page under docs/ that mkdocs builds (``exclude_docs`` left out)."""
    excluded = [p.strip("/") for p in _excluded_docs(MKDOCS.read_text(encoding="utf-8"))]
    pages = []
    for path in sorted(DOCS.rglob("*.md")):
        rel = path.relative_to(DOCS).as_posix()
        if not any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in excluded):
            pages.append(rel)
    return pages


def test_nav_parser_reads_titled_untitled_and_nested_entries() -> None:
    config = (
        "site_name: x\n"
        "nav:\n"
        "  - index.md\n"
        "  - Guide: guide.md\n"
        "  - API reference:\n"
        "      - reference/index.md\n"
        "      - aiotls.TLSContext: reference/context.md  # a comment\n"
        "  # - commented.md\n"
        "plugins:\n"
        "  - search\n"
        "  - other.md\n"
    )
    assert nav_entries(config) == [
        "index.md", "guide.md", "reference/index.md", "reference/context.md"]


def test_every_docs_page_is_in_the_nav() -> None:
    # A new page under docs/ must be put in the site's navigation, or nobody finds it.
    nav = nav_entries(MKDOCS.read_text(encoding="utf-8"))
    assert len(nav) > 10, nav
    missing = [page for page in site_pages() if page not in nav]
    assert not missing, f"docs pages missing from mkdocs.yml's nav: {missing}"


def test_every_nav_entry_exists() -> None:
    nav = nav_entries(MKDOCS.read_text(encoding="utf-8"))
    absent = [entry for entry in nav if not (DOCS / entry).is_file()]
    assert not absent, f"mkdocs.yml's nav names pages that do not exist under docs/: {absent}"
    assert len(nav) == len(set(nav)), "a page is in the nav twice"


def test_api_reference_covers_the_public_modules() -> None:
    # Every name in a public module's __all__ is rendered by some API reference page, either
    # by name (``::: aiotls.asyncio.start_tls``) or with its whole module (``::: aiotls.sync``).
    import importlib

    directives = "\n".join(
        p.read_text(encoding="utf-8") for p in sorted((DOCS / "reference").glob("*.md")))
    rendered = set(re.findall(r"^::: ([\w.]+)", directives, re.MULTILINE))
    assert "aiotls.TLSConnection" in rendered
    missing = []
    for module_name in ("aiotls", "aiotls.asyncio", "aiotls.anyio", "aiotls.sync",
                        "aiotls.compat", "aiotls.testing"):
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if name.startswith("__"):
                continue
            home = getattr(getattr(module, name), "__module__", module_name)
            # (``::: aiotls`` on the index shows the package docstring only, not its names.)
            whole = {module_name, home} - {"aiotls"}
            if not ({f"{module_name}.{name}"} | whole) & rendered:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"public names no API reference page renders: {missing}"

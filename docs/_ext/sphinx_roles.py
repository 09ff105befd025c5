"""A griffe extension for the API reference: Sphinx cross-reference roles as links.

aiotls's docstrings use Sphinx roles (``:class:`~aiotls.TLSContext```, ``:meth:`close```),
which Markdown would show literally.  This rewrites each role into an *optional*
mkdocs-autorefs reference: a link when the target is documented on the site, plain code
otherwise (``ssl.SSLContext``, private helpers), never a build warning.  ``~`` shows the
last component only, as in Sphinx; functions and methods get ``()``.

Loaded by mkdocs.yml (``plugins: mkdocstrings: handlers: python: options: extensions``).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(class|meth|func|attr|data|exc|mod|obj|const):`(~?)([\w.]+)(\(\))?`")
_CALLABLE = {"meth", "func"}


def _exists(collection: Any, path: str) -> bool:
    try:
        collection[path]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    return True


def _candidates(obj: griffe.Object | griffe.Alias, target: str) -> list[str]:
    """Where a relative target may live, nearest first (Sphinx's lookup order, roughly)."""
    found = []
    scope: Any = obj
    while scope is not None:
        found.append(f"{scope.path}.{target}")
        scope = scope.parent
    return [*found, f"aiotls.{target}", target]


def _rewrite(obj: griffe.Object | griffe.Alias, text: str, collection: Any) -> str:
    def replace(match: re.Match[str]) -> str:
        role, tilde, target = match.group(1), match.group(2), match.group(3).lstrip(".")
        title = target.rsplit(".", 1)[-1] if tilde else target
        if role in _CALLABLE:
            title += "()"
        identifier = next((c for c in _candidates(obj, target) if _exists(collection, c)), target)
        return (f'<autoref identifier="{html.escape(identifier)}" optional>'
                f"<code>{html.escape(title)}</code></autoref>")

    return _ROLE.sub(replace, text)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        self._walk(pkg, loader.modules_collection, set())

    def _walk(self, obj: griffe.Object, collection: Any, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = _rewrite(obj, obj.docstring.value, collection)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, collection, seen)  # type: ignore[arg-type]

"""Build the API reference, ``docs/api/``, from nurturekit's docstrings with pdoc.

From the project's root, in an environment with the ``dev`` and ``postgres`` extras::

    python scripts/build_api.py            # rewrite docs/api/
    python scripts/build_api.py OUT_DIR    # write elsewhere (CI builds into a temporary
                                           # directory and compares it with docs/api/)

It documents this checkout's ``src/nurturekit`` (put first on ``sys.path``, so a stale
``pip install .`` does not matter; the dependencies come from the environment): the package and
every submodule whose dotted name has no ``_``-prefixed part, so not ``nurturekit._fast``,
``nurturekit.storage._states`` or ``__main__``. ``nurturekit.storage.postgres`` and
``nurturekit.storage.postgres_sql`` import psycopg, which the ``postgres`` extra provides; they are
documented too.

A broken reference fails the build: on any warning from pdoc (a module that does not import, an
annotation or an ``__all__`` entry that does not resolve, ...) or a missing or unexpected page,
every problem is printed, nothing is written and the exit status is 1; an exception fails it too.

The output is deterministic (no source listings, no timestamps, a fixed hash seed for the reprs
of sets), so it is committed and compared. It does depend on the Python version (signatures and
inherited members come from the interpreter): generate it with the Python CI uses.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

PACKAGE = "nurturekit"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "api"
# pdoc writes only these; an existing output directory holding anything else is not replaced.
OUTPUT_SUFFIXES = {".html", ".js"}
# The ``~`` of a Sphinx cross-reference role: ``:class:`~`` (or ``:py:class:`~``).
ROLE_TILDE = re.compile(r"((?::py)?:[a-z]+:`)~")
# A paragraph that introduces a literal block, ``text::`` (not a directive, ``.. note::``).
LITERAL_BLOCK_MARKER = re.compile(r"^(?![ ]*\.\. )(.*\S)::$", re.MULTILINE)


def _raise(name: str) -> None:
    raise ImportError(f"cannot import {name}")


def public_modules(package: str) -> list[str]:
    """The package and its submodules, sorted, without any whose name has a ``_``-prefixed part."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}.", onerror=_raise):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def pdoc_specs(modules: list[str]) -> list[str]:
    """The module specifications that make pdoc document exactly ``modules``.

    pdoc also walks into the submodules of every package it is given (those its ``__all__``
    lists, or all of them if it has none) and warns about a module given twice; so a module it
    reaches from its parent is not named again. The trailing ``!`` pattern drops the private
    modules such a walk adds.
    """
    from pdoc.extract import iter_modules2

    specs = []
    for name in modules:
        parent, _, last = name.rpartition(".")
        if not parent or last not in iter_modules2(importlib.import_module(parent)):
            specs.append(name)
    return [*specs, r"!.*\._"]


def fix_namedtuple_constructors(modules: list[str]) -> None:
    """Point each NamedTuple's generated ``__new__`` at the module its class is defined in.

    ``typing.NamedTuple`` builds ``__new__`` in a namespace of its own, so pdoc resolves its
    postponed annotations against nothing, then against whatever module a name happens to match:
    ``at: datetime | None`` became the *module* ``datetime`` and a warning (pdoc issue
    https://github.com/mitmproxy/pdoc/issues/765). With the class's module the names resolve as
    they do for mypy. Only this process's objects change. A module that does not import is left
    to pdoc, which reports it.
    """
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, tuple)
                and hasattr(obj, "_fields")
                and obj.__module__ == name
                and getattr(obj.__new__, "__module__", None) == f"namedtuple_{obj.__name__}"
            ):
                obj.__new__.__module__ = name


def read_sphinx_rst() -> None:
    """Teach pdoc's reStructuredText support two things the docstrings use and it does not know.

    ``:class:`~a.b.C``` is read as ``:class:`a.b.C``` (the full name, linked) instead of a tilde
    printed in front of the link: pdoc does not know Sphinx's ``~`` (show only the last part).
    ``text::`` before a literal block is shown as ``text:``, as reStructuredText does, instead
    of with both colons; the block itself pdoc already shows as code.
    """
    import pdoc.docstrings

    convert_rst = pdoc.docstrings.rst

    def rst(contents: str, source_file: Path | None) -> str:
        contents = ROLE_TILDE.sub(r"\1", contents)
        contents = LITERAL_BLOCK_MARKER.sub(r"\1:", contents)
        return convert_rst(contents, source_file)

    pdoc.docstrings.rst = rst


def build(output: Path) -> list[str]:
    """Render the reference into the new directory ``output``; return what went wrong."""
    import pdoc
    import pdoc.render

    # The docstrings are reStructuredText (``:class:`...```, ``code``, ``::`` blocks). The
    # search index would be a 5.6 MB search.js and more than double the output; no search.
    # Source listings would make the output change with every edit of the code; none.
    pdoc.render.configure(docformat="restructuredtext", search=False, show_source=False)
    read_sphinx_rst()
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        modules = public_modules(PACKAGE)
        fix_namedtuple_constructors(modules)
        try:
            pdoc.pdoc(*pdoc_specs(modules), output_directory=output)
        except RuntimeError as e:  # pdoc's "Error importing <module>"
            error = f"{e}: {e.__cause__!r}"
    problems = [f"{w.category.__name__}: {w.message}" for w in caught]
    if error is not None:
        return [*problems, error]

    expected = {"index.html", *(f"{name.replace('.', '/')}.html" for name in modules)}
    written = {p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file()}
    problems += [f"pdoc wrote no page for {page}" for page in sorted(expected - written)]
    problems += [f"pdoc wrote an unexpected {page}" for page in sorted(written - expected)]
    return problems


def replace(target: Path, built: Path) -> None:
    """Put the tree ``built`` at ``target``, replacing an earlier build there."""
    if target.exists():
        if not target.is_dir():
            sys.exit(f"build_api: {target} is not a directory")
        strays = [p for p in target.rglob("*") if p.is_file() and p.suffix not in OUTPUT_SUFFIXES]
        if strays:
            sys.exit(f"build_api: {target} holds {strays[0]}, which pdoc did not write; stopping")
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(built, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build nurturekit's API reference with pdoc.")
    parser.add_argument(
        "output",
        nargs="?",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="the directory to write, replacing what is there (default: docs/api/)",
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "api"
        problems = build(built)
        if problems:
            for problem in problems:
                print(f"build_api: {problem}", file=sys.stderr)
            print(f"build_api: {len(problems)} problem(s); nothing written", file=sys.stderr)
            return 1
        replace(args.output, built)
    print(f"build_api: wrote {args.output}")
    return 0


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":
        # The reprs of sets and frozensets in default values follow the hash seed; fix it.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    sys.exit(main())

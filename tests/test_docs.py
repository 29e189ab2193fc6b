"""The reference docs agree with the code: routes, settings, environment variables and commands.

Everything is read from the code itself (the apps' routers, the config loaders' source, the
CLIs' argparse parsers and --help output), so a route, setting or command added without a line
in docs/ fails here. The rules:

* Routes: every (method, path) of `node.app.create_app` is in a table of docs/node.md, and of
  `aggregator.app.create_app` in docs/aggregator.md; every /api/ route of either is in a table
  of docs/api.md. A table row documents a route when its first cell names the method(s) and its
  second cell holds the path pattern in backticks, exactly as the router's canonical form
  (`/events/{uuid}`). HEAD is left out: aiohttp adds it to every GET. A route registered for
  any method ("*") is a form page and must be documented as both GET and POST. Conversely,
  every route documented in those tables must exist.
* Settings: every TOML key the loaders read appears in backticks in the first cell of a table
  row of the service's page, and so does every KLYNGE_* variable they read.
* Commands: every `klynge …` command (leaf of the argparse tree) is named in docs/cli.md and
  on its service's page, every long option of it appears on that page, and every --help, at
  every level, ends with an example.
* Links: every relative link in README.md and docs/*.md points to a file that exists, and an
  #anchor into a Markdown file names one of its headings.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp import web

import aggregator.config
import node.config
from aggregator.app import create_app as aggregator_app
from aggregator.config import Source, to_toml
from aggregator.config import load_config as load_aggregator_config
from klynge.cli import COMMANDS
from klynge.cli import main as klynge_main
from node.app import create_app as node_app
from node.config import load_config as load_node_config
from node.config import render_new_config

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
LOADER_FUNCTIONS = {"_text", "_str", "_number", "_list"}  # (raw, "key", ...) readers
BACKTICKED = re.compile(r"`([^`]+)`")


def page(name: str) -> str:
    """Return the text of docs/NAME."""
    return (DOCS / name).read_text(encoding="utf-8")


# --- tables ---------------------------------------------------------------------------------


def table_rows(text: str) -> Iterator[list[str]]:
    """Yield the cells of every Markdown table row outside fenced code blocks."""
    for line in strip_code_blocks(text).splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            continue
        cells = [cell.strip() for cell in stripped.strip("|").split("|")]
        if cells and not set(cells[0]) <= set("-: "):
            yield cells


def strip_code_blocks(text: str) -> str:
    """Return `text` without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def documented_routes(text: str) -> set[tuple[str, str]]:
    """Return (method, path) of every table row naming HTTP methods and a path in backticks."""
    found = set()
    for cells in table_rows(text):
        if len(cells) < 2:
            continue
        methods = [m for m in re.split(r"[,\s/]+", cells[0]) if m]
        if not methods or not all(m in HTTP_METHODS for m in methods):
            continue
        for path in BACKTICKED.findall(cells[1]):
            found.update((method, path) for method in methods if path.startswith("/"))
    return found


def first_cell_names(text: str) -> set[str]:
    """Return the backticked names in the first cell of every table row."""
    return {name for cells in table_rows(text) for name in BACKTICKED.findall(cells[0])}


# --- (a) routes -----------------------------------------------------------------------------


def app_routes(app: web.Application) -> set[tuple[str, str]]:
    """Return (method, canonical path) of every route, HEAD left out, "*" as GET and POST."""
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        methods = ("GET", "POST") if route.method == "*" else (route.method,)
        routes.update((method, route.resource.canonical) for method in methods)
    return routes


@pytest.fixture
def node_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """Return the routes of a node made by `klynge node init` in tmp_path."""
    directory = tmp_path / "osterby"
    urls = ["--url", "https://osterby.example.dk", "--aggregator", "https://klynge.example.dk"]
    run_cli(["node", "init", str(directory), "--name", "Østerby", *urls])
    return app_routes(node_app(load_node_config(directory, env={})))


@pytest.fixture
def aggregator_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """Return the routes of an aggregator made by `klynge aggregator init` in tmp_path."""
    directory = tmp_path / "klynge"
    url = "https://klynge.example.dk"
    run_cli(["aggregator", "init", str(directory), "--name", "Klyngen ved Åen", "--url", url])
    return app_routes(aggregator_app(load_aggregator_config(directory, env={})))


def test_route_extraction_sees_known_routes(
    node_routes: set[tuple[str, str]], aggregator_routes: set[tuple[str, str]]
) -> None:
    assert ("PATCH", "/api/events/{uuid}") in node_routes
    assert ("GET", "/login") in node_routes and ("POST", "/login") in node_routes
    assert ("POST", "/ping") in aggregator_routes
    assert not any(method == "HEAD" for method, _ in node_routes | aggregator_routes)


def test_every_node_route_is_in_node_md(node_routes: set[tuple[str, str]]) -> None:
    missing = sorted(node_routes - documented_routes(page("node.md")))
    assert not missing, f"node routes missing from the tables of docs/node.md: {missing}"


def test_every_aggregator_route_is_in_aggregator_md(
    aggregator_routes: set[tuple[str, str]],
) -> None:
    missing = sorted(aggregator_routes - documented_routes(page("aggregator.md")))
    assert not missing, f"aggregator routes missing from docs/aggregator.md: {missing}"


def test_every_api_route_is_in_api_md(
    node_routes: set[tuple[str, str]], aggregator_routes: set[tuple[str, str]]
) -> None:
    api = {r for r in node_routes | aggregator_routes if r[1].startswith("/api/")}
    missing = sorted(api - documented_routes(page("api.md")))
    assert not missing, f"API routes missing from the tables of docs/api.md: {missing}"


def test_documented_routes_exist(
    node_routes: set[tuple[str, str]], aggregator_routes: set[tuple[str, str]]
) -> None:
    for name, routes in (
        ("node.md", node_routes),
        ("aggregator.md", aggregator_routes),
        ("api.md", node_routes | aggregator_routes),
    ):
        invented = sorted(documented_routes(page(name)) - routes)
        assert not invented, f"docs/{name} documents routes the app does not have: {invented}"


# --- (b) settings and environment variables --------------------------------------------------


def loader_keys(module: ModuleType) -> set[str]:
    """Return the TOML keys a config module's loader reads, found in its source.

    Conservative: string literals passed as the key to the reader helpers (`_text(raw, "k")`,
    `_number(raw, "k", …)`), to `raw.get("k")`/`item.get("k")`, tested with `"k" in raw`,
    iterated as `for key in ("a", "b")`, or listed in a module-level `*_KEYS` tuple.
    """
    keys: set[str] = set()
    for found in ast.walk(source_tree(module)):
        keys.update(_keys_in(found))
    return keys


def source_tree(module: ModuleType) -> ast.Module:
    """Return the parsed source of a module."""
    return ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))


def _keys_in(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in LOADER_FUNCTIONS and len(node.args) > 1:
            yield from _strings([node.args[1]])
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "get"
            and isinstance(func.value, ast.Name)
            and func.value.id in ("raw", "item")
        ):
            yield from _strings(node.args[:1])
    elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In):
        if isinstance(node.comparators[0], ast.Name) and node.comparators[0].id == "raw":
            yield from _strings([node.left])
    elif isinstance(node, ast.For) and isinstance(node.iter, ast.Tuple):
        yield from _strings(node.iter.elts)
    elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if any(name.endswith("_KEYS") for name in names):
            yield from _strings(node.value.elts)


def _strings(nodes: list[ast.expr]) -> Iterator[str]:
    for value in nodes:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            yield value.value


def env_variables(module: ModuleType) -> set[str]:
    """Return every KLYNGE_* name that appears as a string literal in a module."""
    return {
        n.value
        for n in ast.walk(source_tree(module))
        if isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and re.fullmatch(r"KLYNGE_[A-Z_]+", n.value)
    }


def toml_keys(text: str) -> set[str]:
    """Return every key of a TOML document, of nested tables and arrays of tables too."""
    keys: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                keys.add(key)
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(tomllib.loads(text))
    return keys


def test_key_extraction_covers_what_the_files_hold() -> None:
    node_keys = loader_keys(node.config)
    written = render_new_config("Østerby", "https://osterby.example.dk", (), "Europe/Copenhagen")
    place = '[[places]]\nname = "Forsamlingshuset"\nlat = 55.64\nlon = 11.82\n'
    assert toml_keys(written + place) <= node_keys
    assert {"name", "url", "secret_key", "feed_id", "aggregators", "places", "lat"} <= node_keys
    agg_keys = loader_keys(aggregator.config)
    config = aggregator.config.AggregatorConfig(
        data_dir=Path("."),
        name="Klyngen ved Åen",
        url="https://klynge.example.dk",
        sources=(Source("https://osterby.example.dk/feed.atom", "Østerby"),),
    )
    assert toml_keys(to_toml(config)) <= agg_keys
    assert {"poll_minutes", "limits", "sources", "kind", "stale_after_hours"} <= agg_keys
    assert env_variables(node.config) == set(node.config.ENV_KEYS)
    assert "KLYNGE_POLL_MINUTES" in env_variables(aggregator.config)


@pytest.mark.parametrize(
    ("module", "doc"), [(node.config, "node.md"), (aggregator.config, "aggregator.md")]
)
def test_every_setting_is_in_a_reference_table(module: ModuleType, doc: str) -> None:
    documented = first_cell_names(page(doc))
    missing = sorted(loader_keys(module) - documented)
    assert not missing, f"settings missing from the tables of docs/{doc}: {missing}"


@pytest.mark.parametrize(
    ("module", "doc"), [(node.config, "node.md"), (aggregator.config, "aggregator.md")]
)
def test_every_environment_variable_is_in_a_reference_table(module: ModuleType, doc: str) -> None:
    documented = first_cell_names(page(doc))
    missing = sorted(env_variables(module) - documented)
    assert not missing, f"environment variables missing from docs/{doc}: {missing}"


# --- (c, d) commands --------------------------------------------------------------------------


def run_cli(argv: list[str]) -> str:
    """Run `klynge ARGV` in-process; return stdout (argparse's --help exit 0 included)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = klynge_main(argv)
        except SystemExit as e:
            code = int(e.code or 0)
    assert code == 0, f"klynge {' '.join(argv)} failed: {err.getvalue()}"
    return out.getvalue()


def command_tree() -> list[tuple[list[str], bool]]:
    """Return every command path under `klynge` with whether it is a leaf (no subcommands)."""
    paths: list[tuple[list[str], bool]] = []
    for name, (module_name, _) in COMMANDS.items():
        build = getattr(importlib.import_module(module_name), "_parser", None)
        paths += _walk(build(), [name]) if build is not None else [([name], True)]
    return paths


def _walk(parser: argparse.ArgumentParser, path: list[str]) -> list[tuple[list[str], bool]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    found = [(path, not subs)]
    for action in subs:
        for name, sub in action.choices.items():
            found += _walk(sub, [*path, name])
    return found


def home_page(path: list[str]) -> str:
    """Return the docs page that documents a command in full."""
    return {"node": "node.md", "aggregator": "aggregator.md"}.get(path[0], "cli.md")


def long_options(help_text: str) -> set[str]:
    """Return the long options listed in a --help text, --help itself left out."""
    options = set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", help_text, re.MULTILINE))
    return options - {"--help"}


def test_command_tree_sees_known_commands() -> None:
    leaves = {" ".join(path) for path, leaf in command_tree() if leaf}
    expected = {"node token revoke", "aggregator source list", "feed to-ics", "demo"}
    assert expected <= leaves
    assert "node user" not in leaves


@pytest.mark.parametrize(
    "path", [p for p, leaf in command_tree() if leaf], ids=lambda p: "-".join(p)
)
def test_every_command_is_documented(path: list[str]) -> None:
    command = "klynge " + " ".join(path)
    assert command in page("cli.md"), f"{command} is not in docs/cli.md"
    home = home_page(path)
    text = page(home)
    assert command in text, f"{command} is not in docs/{home}"
    missing = sorted(o for o in long_options(run_cli([*path, "--help"])) if o not in text)
    assert not missing, f"options of {command} missing from docs/{home}: {missing}"


@pytest.mark.parametrize(
    "path", [[], *(p for p, _ in command_tree())], ids=lambda p: "-".join(p) or "klynge"
)
def test_every_help_ends_with_an_example(path: list[str]) -> None:
    help_text = run_cli([*path, "--help"]).rstrip()
    match = re.search(r"\n(examples?):\n((?:  .*\n?)+)$", help_text)
    assert match, f"`klynge {' '.join(path)} --help` does not end with an example:\n{help_text}"
    examples = match.group(2).splitlines()
    assert all(line.strip().startswith("klynge ") or "| klynge " in line for line in examples)
    assert any(line.strip().startswith(f"klynge {' '.join(path)}".strip()) or
               f"| klynge {' '.join(path)}" in line for line in examples)  # fmt: skip


# --- (e) links --------------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)|^\[[^\]]+\]:\s*(\S+)", re.MULTILINE)


def markdown_files() -> list[Path]:
    """Return README.md and every page in docs/."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def slug(heading: str) -> str:
    """Return GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Return the anchors of every heading in a Markdown file (duplicates get -1, -2 …)."""
    seen: dict[str, int] = {}
    found = set()
    text = strip_code_blocks(path.read_text(encoding="utf-8"))
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.MULTILINE):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    """Return the link targets of a Markdown file that are not URLs with a scheme."""
    text = strip_code_blocks(path.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans are not links
    targets = [a or b for a, b in LINK.findall(text)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def test_link_extraction_sees_links() -> None:
    assert "docs/getting-started.md" in relative_links(ROOT / "README.md")
    assert "api.md" in relative_links(DOCS / "node.md")


def is_broken(path: Path, target: str) -> bool:
    """Tell whether a relative link from `path` misses its file or its heading anchor."""
    file_part, _, anchor = target.partition("#")
    dest = (path.parent / file_part).resolve() if file_part else path
    if not dest.exists():
        return True
    return bool(anchor) and dest.suffix == ".md" and anchor not in anchors(dest)


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.name)
def test_relative_links_point_to_files_that_exist(path: Path) -> None:
    broken = [target for target in relative_links(path) if is_broken(path, target)]
    assert not broken, f"broken links in {path.relative_to(ROOT)}: {broken}"

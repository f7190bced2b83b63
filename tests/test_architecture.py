"""Layout and import guards: the `daemon` name never ships, and the layers stay apart.

See STYLE.md §4 (why `daemon/` is a source root, not a package) and habit 7 (import hygiene).
Import checks run in a fresh interpreter each, so nothing this test process imported leaks in.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import REPO, env_for

DAEMON_SRC = REPO / "daemon" / "axme_daemon"


# -- the top-level name `daemon` ----------------------------------------------------------------


def test_daemon_folder_is_a_source_root_not_a_package() -> None:
    assert (DAEMON_SRC / "__init__.py").is_file()
    assert not (REPO / "daemon" / "__init__.py").exists()


def test_wheel_packages_never_include_daemon() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert "daemon" not in packages
    # hatchling names each shipped package after the last path component.
    assert sorted(Path(p).name for p in packages) == ["axme_cli", "axme_daemon"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The real wheel, built by pip from the working tree.

    With hatchling importable here the build needs no network (`--no-build-isolation`);
    otherwise pip fetches the backend from pyproject's `build-system.requires`.
    """
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)]
    if importlib.util.find_spec("hatchling") is not None:
        cmd.insert(-1, "--no-build-isolation")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    (built,) = out.glob("*.whl")
    with zipfile.ZipFile(built) as zf:
        yield zf


def test_wheel_top_level_names(wheel: zipfile.ZipFile) -> None:
    top = {name.split("/")[0] for name in wheel.namelist()}
    top = {name for name in top if not name.endswith(".dist-info")}
    assert top == {"axme_cli", "axme_daemon"}


def test_wheel_ships_the_sql(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert "axme_daemon/store/sql/sqlite/schema.sql" in names
    migrations = sorted(DAEMON_SRC.glob("store/sql/*/migrations/*.sql"))
    assert migrations, "no migrations found in the source tree"
    for path in migrations:
        assert path.relative_to(DAEMON_SRC.parent).as_posix() in names
    every_sql = {p.relative_to(DAEMON_SRC.parent).as_posix() for p in DAEMON_SRC.rglob("*.sql")}
    assert every_sql <= names, sorted(every_sql - names)


def _metadata(text: str) -> list[tuple[str, str]]:
    head = text.split("\n\n", 1)[0]
    return [tuple(line.split(": ", 1)) for line in head.splitlines() if ": " in line]  # type: ignore[misc]


def test_wheel_ships_the_license(wheel: zipfile.ZipFile) -> None:
    """The Apache-2.0 text the metadata names travels with the wheel."""
    names = wheel.namelist()
    (licence,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert wheel.read(licence).decode() == (REPO / "LICENSE").read_text()
    assert "Apache License" in (REPO / "LICENSE").read_text()
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    fields = _metadata(wheel.read(metadata).decode())
    assert ("License-Expression", "Apache-2.0") in fields
    assert ("License-File", "LICENSE") in fields


def test_sdist_ships_the_license(tmp_path: Path) -> None:
    from hatchling.builders.sdist import SdistBuilder

    (built,) = SdistBuilder(str(REPO)).build(directory=str(tmp_path))
    with tarfile.open(built) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
        assert {"LICENSE", "README.md", "pyproject.toml"} <= names
        pkg_info = sdist.extractfile(next(n for n in sdist.getnames() if n.endswith("/PKG-INFO")))
        assert pkg_info is not None
        assert ("License-File", "LICENSE") in _metadata(pkg_info.read().decode())


# -- import hygiene ----------------------------------------------------------------------------

# `__import__`, not importlib.import_module: only the former shows up in `-X importtime`.
_PROBE = """
import json, sys
before = set(sys.modules)
__import__(sys.argv[1])
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _import_chain(importtime: str, module: str) -> str:
    """From `python -X importtime` output: `module` and the chain of imports that pulled it in."""
    rows = []
    for line in importtime.splitlines():
        if line.startswith("import time:") and "|" in line:
            name_col = line.rsplit("|", 1)[1]
            rows.append((len(name_col) - len(name_col.lstrip()), name_col.strip()))
    for i, (depth, name) in enumerate(rows):
        if name == module:
            chain = [name]
            for later_depth, later_name in rows[i + 1 :]:  # a parent is printed after its children
                if later_depth < depth:
                    chain.append(later_name)
                    depth = later_depth
            return " <- ".join(chain)
    return f"{module} (import chain not found)"


def _newly_imported(module: str, home: Path) -> tuple[set[str], str]:
    """Modules that importing `module` loads in a fresh interpreter, and its importtime log."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _PROBE, module],
        cwd=home,  # not the repo: only PYTHONPATH (repo and repo/daemon) provides our packages
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return set(json.loads(result.stdout)), result.stderr


def _hits(loaded: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        name for name in loaded if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


@pytest.mark.parametrize("module", ["axme_daemon.service", "axme_daemon.api"])
def test_daemon_does_not_load_the_cli_stack(module: str, axme_home: Path) -> None:
    loaded, importtime = _newly_imported(module, axme_home)
    assert module in loaded
    forbidden = ("typer", "rich", "textual", "axme_cli.main", "axme_cli.commands")
    hits = _hits(loaded, forbidden)
    assert not hits, "\n".join(_import_chain(importtime, f) for f in forbidden if f in hits)


@pytest.mark.parametrize("module", ["axme_cli.protocol", "axme_cli.errors"])
def test_wire_modules_import_nothing_third_party(module: str, axme_home: Path) -> None:
    loaded, importtime = _newly_imported(module, axme_home)
    assert module in loaded
    third_party = sorted(
        top
        for top in {name.split(".")[0] for name in loaded}
        if top not in sys.stdlib_module_names and not top.startswith("axme_cli")
    )
    assert not third_party, "\n".join(_import_chain(importtime, t) for t in third_party)


def test_cli_start_does_not_load_the_server_or_http_stack(axme_home: Path) -> None:
    loaded, importtime = _newly_imported("axme_cli.main", axme_home)
    assert "typer" in loaded  # the probe did import the CLI
    heavy = ("httpx", "fastapi", "uvicorn", "aiosqlite", "pydantic")
    hits = _hits(loaded, heavy)
    assert not hits, "\n".join(_import_chain(importtime, h) for h in heavy if h in hits)


@pytest.mark.parametrize("module", ["axme_cli.launch", "axme_cli.session", "axme_cli.client"])
def test_quick_paths_load_neither_typer_nor_httpx(module: str, axme_home: Path) -> None:
    """`axme --version`, a plain `axme send` and an agent's plain calls stay lean."""
    loaded, importtime = _newly_imported(module, axme_home)
    assert module in loaded
    heavy = ("typer", "rich", "httpx", "pydantic", "axme_cli.main", "axme_cli.commands")
    hits = _hits(loaded, heavy)
    assert not hits, "\n".join(_import_chain(importtime, h) for h in heavy if h in hits)


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            out.append((node.lineno, node.args[0].value))
    return out


def test_imported_names_scanner_sees_every_form() -> None:
    source = (
        "import axme_daemon\nfrom axme_daemon.api import x\nimport os, axme_daemon.store\n"
        "importlib.import_module('axme_daemon.service')\n__import__('axme_daemon')\n"
        "from . import axme_daemon\n"
    )
    found = [name for _, name in _imported_names(ast.parse(source))]
    assert found.count("axme_daemon") == 2
    assert {"axme_daemon.api", "axme_daemon.store", "axme_daemon.service", "os"} <= set(found)


def test_cli_package_never_imports_the_daemon() -> None:
    files = sorted((REPO / "axme_cli").rglob("*.py"))
    assert files
    offenders = [
        f"{path.relative_to(REPO)}:{lineno}: {name}"
        for path in files
        for lineno, name in _imported_names(ast.parse(path.read_text(), filename=str(path)))
        if name.split(".")[0] == "axme_daemon"
    ]
    assert not offenders, "axme_cli must not import axme_daemon:\n" + "\n".join(offenders)


def test_cli_package_opens_no_store() -> None:
    """No client opens the database (ARCHITECTURE "The one rule"): not the bench's growth
    fill either (it runs `python -m axme_daemon.growth`, over the store API). Only W0 may
    use sqlite3, on a file of its own: the disk's ceiling."""
    drivers = {"sqlite3", "asyncpg", "psycopg", "psycopg2", "aiosqlite", "sqlalchemy"}
    allowed = {("axme_cli/bench/workloads.py", "sqlite3")}
    offenders = [
        f"{path.relative_to(REPO)}:{lineno}: {name}"
        for path in sorted((REPO / "axme_cli").rglob("*.py"))
        for lineno, name in _imported_names(ast.parse(path.read_text(), filename=str(path)))
        if name.split(".")[0] in drivers
        and (path.relative_to(REPO).as_posix(), name) not in allowed
    ]
    assert not offenders, "axme_cli must not open a store:\n" + "\n".join(offenders)


def test_lifecycle_rules_import_no_database_driver() -> None:
    """The rules run over any backend's `Tx`: a driver, or a backend module, belongs below."""
    files = sorted((DAEMON_SRC / "lifecycle").rglob("*.py"))
    assert files
    drivers = {"sqlite3", "asyncpg", "psycopg", "psycopg2", "aiosqlite", "sqlalchemy"}
    offenders = [
        f"{path.relative_to(REPO)}:{lineno}: {name}"
        for path in files
        for lineno, name in _imported_names(ast.parse(path.read_text(), filename=str(path)))
        if name.split(".")[0] in drivers
        or (name.startswith("axme_daemon.store.") and name != "axme_daemon.store.base")
    ]
    assert not offenders, "lifecycle/ must not import a driver or a backend:\n" + "\n".join(
        offenders
    )


def test_every_named_query_a_rule_asks_for_is_in_each_dialect() -> None:
    from axme_daemon.store.queries import load_queries

    asked = set()
    for path in (DAEMON_SRC / "lifecycle").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"one", "all", "run", "write", "insert", "run_many"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                asked.add(node.args[0].value)
    assert len(asked) > 30
    for dialect in sorted(p.name for p in (DAEMON_SRC / "store" / "sql").iterdir() if p.is_dir()):
        missing = asked - set(load_queries(dialect))
        assert not missing, f"{dialect} lacks queries {sorted(missing)}"

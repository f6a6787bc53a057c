"""The house as the next engineer reads it (issue 18, item 7), checked by parsing the code:

- no module outside worker/store/ reaches into the store's client (``store.r``) or its key
  names (``store.k``, worker/store/keys.py), nor builds a sub-store: they are attributes of
  the one ``Store``;
- docs/architecture.md names every module and Lua script that exists (and none that does
  not);
- no docstring or comment cites a file, or a ``worker.…`` object, that does not exist.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "worker"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MODULES = sorted(p for p in WORKER.rglob("*.py"))
SCRIPTS = sorted((WORKER / "store" / "lua").glob("*.lua"))


def _outside_store() -> list[Path]:
    return [p for p in MODULES if (WORKER / "store") not in p.parents]


def _sub_store_classes() -> set[str]:
    """The classes of the store's attributes that are stores themselves (built once)."""
    import redis.asyncio as aioredis

    from worker.store.base import Conn
    from worker.store.core import Store
    from worker.store.keys import Keys

    store = Store(aioredis.Redis(), Keys("house:"))  # builds its parts; connects to nothing
    return {type(v).__name__ for v in vars(store).values()
            if type(v).__module__.startswith("worker.store.") and hasattr(v, "r")
            and not isinstance(v, Conn)}


def reaches_into_the_store(source: str, sub_stores: set[str]) -> list[str]:
    """What in ``source`` uses the store's insides: ``.r``/``.k``, the key modules, a
    sub-store built here."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("r", "k"):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").endswith("store.keys"):
            found.append(f"line {node.lineno}: imports the key names")
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if name in sub_stores:
                found.append(f"line {node.lineno}: builds a {name}")
    return found


def test_only_the_store_reaches_into_redis_and_builds_its_parts() -> None:
    sub_stores = _sub_store_classes()
    assert {"Registry", "BounceStore", "DigestStore", "PatronData"} <= sub_stores
    # the queue's sweeper and metrics threads are sync stores of their own, and the
    # broker reads the queue secret on dramatiq's client (worker/queue/broker.py)
    allowed = {"worker/queue/broker.py", "worker/queue/sweeper.py", "worker/queue/metrics.py"}
    bad = {}
    for p in _outside_store():
        rel = str(p.relative_to(ROOT))
        if rel in allowed:
            continue
        found = reaches_into_the_store(p.read_text(), sub_stores)
        if found:
            bad[rel] = found
    assert bad == {}


def test_the_check_finds_what_it_is_about() -> None:
    subs = {"Registry"}
    assert reaches_into_the_store("x = rt.store.r.get('a')", subs) == ["line 1: .r"]
    assert reaches_into_the_store("k = store.k.hold('H')", subs) == ["line 1: .k"]
    assert reaches_into_the_store("Registry(store).get('C')", subs) == ["line 1: builds a Registry"]
    assert reaches_into_the_store("from ..store.keys import Keys", subs) == [
        "line 1: imports the key names"]
    assert reaches_into_the_store("store.contacts.get('C')", subs) == []


# -- docs/architecture.md ---------------------------------------------------------------

def _named(text: str) -> set[str]:
    return set(re.findall(r"`([^`\s]+)`", text))


def module_lines() -> set[str]:
    """How architecture.md must name each module (path under worker/) and each script."""
    want = set()
    for p in MODULES:
        rel = p.relative_to(WORKER)
        want.add(f"{rel.parent}/" if p.name == "__init__.py" and rel.parent != Path(".")
                 else str(rel) if p.name != "__init__.py" else "")
    want.discard("")
    return want | {f"store/lua/{p.name}" for p in SCRIPTS}


def test_the_architecture_page_names_every_module_and_script() -> None:
    """A module or Lua script added without its line in docs/architecture.md (or a line
    left for one that is gone) fails here, naming it."""
    text = ARCHITECTURE.read_text()
    named = _named(text)
    want = module_lines()
    assert sorted(want - named) == [], "add a line to docs/architecture.md for these"
    index = text[text.index("## Every module"):]
    listed = {n for n in _named(index)
              if n.endswith((".py", ".lua", "/")) and not n.startswith(("worker/", "docs/", "tests/"))}
    gone = {n for n in listed - want if not (n.endswith("/") and (WORKER / n).is_dir())}
    assert sorted(gone) == [], "docs/architecture.md names these, which do not exist"


# -- what docstrings and comments cite ---------------------------------------------------

PATH = re.compile(r"(?<![\w/.:~-])((?:[A-Za-z_][\w.-]*/)+[\w.-]+\.(?:py|lua|md|html|jsonl|toml|json|txt|eml))\b")
ROLE = re.compile(r":(?:mod|func|class|meth|data|attr|exc):`~?(worker(?:\.\w+)+)`")


def _exists(cited: str, where: Path) -> bool:
    for base in (ROOT, WORKER, where.parent, where.parent.parent):
        if (base / cited).exists():
            return True
    top = cited.split("/", 1)[0]
    spec = importlib.util.find_spec(top) if top.isidentifier() and top != "worker" else None
    return bool(spec and spec.submodule_search_locations and any(
        (Path(d).parent / cited).exists() for d in spec.submodule_search_locations))


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def dead_citations(path: Path, text: str) -> list[str]:
    bad = [c for c in PATH.findall(text) if not _exists(c, path)]
    return bad + [d for d in ROLE.findall(text) if not _resolves(d)]


TOP = ("worker/", "docs/", "tests/", "bench/", "examples/")


@pytest.mark.parametrize("path", [*MODULES, *SCRIPTS], ids=lambda p: str(p.relative_to(ROOT)))
def test_no_docstring_cites_what_does_not_exist(path: Path) -> None:
    assert dead_citations(path, path.read_text()) == []


def test_no_test_docstring_cites_a_file_of_the_project_that_does_not_exist() -> None:
    """Tests name sample files by their own paths: only the project's files are checked."""
    bad = {str(p.relative_to(ROOT)): [c for c in dead_citations(p, p.read_text())
                                      if c.startswith(TOP) or c.startswith("worker.")]
           for p in sorted((ROOT / "tests").glob("*.py")) if p.name != "test_house.py"}
    assert {k: v for k, v in bad.items() if v} == {}


def test_a_dead_citation_is_found() -> None:
    here = WORKER / "app" / "holds.py"
    assert dead_citations(here, "see worker/store/nowhere.py and app/gone.py") == [
        "worker/store/nowhere.py", "app/gone.py"]
    assert dead_citations(here, "see :func:`worker.app.holds.no_such_thing`") == [
        "worker.app.holds.no_such_thing"]
    assert dead_citations(here, "see worker/store/core.py, store/lua/claim_hold.lua, "
                                ":class:`worker.store.core.Store`") == []


# -- one name, one meaning ---------------------------------------------------------------

# conventional names every module of a package may have: a route's page, a thread's start
CONVENTIONAL = {"page", "start"}


def test_a_function_name_means_one_thing_within_a_package() -> None:
    """Two ``new_token``s (a notice's, a return path's) in worker/mail/, two ``reject``s (a
    registration's, a refusal's) in worker/app/, and ``_phone`` meaning "list for a call"
    in one module and "the phone number" in another: the reader had to look each up."""
    by_name: dict[tuple[str, str], list[str]] = {}
    for p in MODULES:
        package = str(p.parent.relative_to(WORKER))
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and node.name not in CONVENTIONAL:
                by_name.setdefault((package, node.name.lstrip("_")), []).append(p.name)
    assert {k: v for k, v in by_name.items() if len(v) > 1} == {}

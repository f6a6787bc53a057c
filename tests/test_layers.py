"""Import arrows run one way (docs/architecture.md): every module under worker/ is parsed
with ``ast`` and each of its imports checked against the layers below. A module may
import its own layer and the layers under it, never one above; the packages must not
import each other in a cycle; only worker/store/ talks to Redis."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "worker"

# low to high; a module is placed by the first part of its name under worker/
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"__init__", "settings", "errors", "jdate", "masking", "logs"}),
    ("pure rules", {"contact", "ils", "holds", "bounces", "mail", "stats"}),
    ("store", {"store"}),
    ("runtime", {"runtime"}),
    ("app", {"app"}),
    ("queue and mailbox", {"queue", "mailbox"}),
    ("cli and web", {"cli", "web"}),
]
LEVEL = {part: n for n, (_, parts) in enumerate(LAYERS) for part in parts}

# the relay adapter is used by the runtime, but stays usable on its own: mail and the
# foundation only
RELAY_ADAPTER = {"worker.mail.transport", "worker.mail.pipelining"}

# modules outside worker/store/ that may import redis, and why
REDIS_EXCEPTIONS: dict[str, str] = {}
# worker.queue.fetch is not one: it subclasses dramatiq's RedisBroker and runs its fetch
# script on dramatiq's own client (self.client), with the key names from
# worker.store.queue_keys; it imports no redis itself.


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file (or in ``source`` as
    if it were that file), relative ones resolved; ``from . import x`` counts as
    importing ``package.x``."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text() if source is None else source, str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                if node.module:
                    found.append((node.lineno, ".".join(base + [node.module])))
                else:
                    found += [(node.lineno, ".".join(base + [a.name])) for a in node.names]
            else:
                found.append((node.lineno, node.module or ""))
    return found


def part(module: str) -> str:
    """``worker.store.core`` → ``store``; ``worker`` → ``__init__``."""
    names = module.split(".")
    return names[1] if len(names) > 1 else "__init__"


MODULES = sorted(ROOT.rglob("*.py"))


def test_every_package_has_a_layer():
    unplaced = {part(module_name(p)) for p in MODULES} - set(LEVEL)
    assert not unplaced, f"put these in a layer of tests/test_layers.py: {sorted(unplaced)}"


def test_no_module_imports_a_higher_layer():
    wrong = []
    for path in MODULES:
        me = module_name(path)
        for line, target in imports(path):
            if not target.startswith("worker.") and target != "worker":
                continue
            if LEVEL[part(target)] > LEVEL[part(me)]:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line} imports {target} "
                             f"({LAYERS[LEVEL[part(me)]][0]} → {LAYERS[LEVEL[part(target)]][0]})")
            elif me in RELAY_ADAPTER and LEVEL[part(target)] > 0 and part(target) != "mail":
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line} imports {target} (the "
                             "relay adapter may use only the foundation and worker.mail)")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_packages_import_each_other_in_no_cycle():
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for path in MODULES:
        me = part(module_name(path))
        for line, target in imports(path):
            if target.startswith("worker.") and part(target) != me:
                edges.setdefault(me, set()).add(part(target))
                where.setdefault((me, part(target)), f"{path.relative_to(ROOT.parent)}:{line}")
    cycle = _cycle(edges)
    assert cycle is None, "packages import each other in a cycle: " + " → ".join(cycle) + (
        "\n" + "\n".join(f"  {a} → {b} at {where[a, b]}" for a, b in zip(cycle, cycle[1:])))


def test_modules_import_each_other_in_no_cycle():
    """Not even through an import inside a function: a cycle hidden that way is a
    design that wants one module where there are two (or a third below both)."""
    names = {module_name(p) for p in MODULES}
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for path in MODULES:
        me = module_name(path)
        for line, target in imports(path):
            if target in names and target != me:
                edges.setdefault(me, set()).add(target)
                where.setdefault((me, target), f"{path.relative_to(ROOT.parent)}:{line}")
    cycle = _cycle(edges)
    assert cycle is None, "modules import each other in a cycle: " + " → ".join(cycle) + (
        "\n" + "\n".join(f"  {a} → {b} at {where[a, b]}" for a, b in zip(cycle, cycle[1:])))


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_only_the_store_imports_redis():
    wrong = []
    for path in MODULES:
        me = module_name(path)
        if part(me) == "store" or me in REDIS_EXCEPTIONS:
            continue
        for line, target in imports(path):
            if target == "redis" or target.startswith("redis."):
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line} imports {target}")
    assert not wrong, ("Redis I/O belongs in worker/store/ (errors to catch: "
                       "worker.store.client):\n" + "\n".join(wrong))


def test_the_checks_see_what_they_look_for():
    """The parser resolves relative imports (a check that saw none would always pass)."""
    probe = ROOT / "store" / "probe.py"  # not written: its text is given
    assert imports(probe, "from ..web import app\nfrom . import keys\nimport redis.asyncio\n") \
        == [(1, "worker.web"), (2, "worker.store.keys"), (3, "redis.asyncio")]
    assert imports(ROOT / "mail" / "__init__.py", "from .transport import X\n") == [
        (1, "worker.mail.transport")]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None

"""This tree against other commits, alternating in one sitting: the regression guard.

    .venv/bin/python bench/compare.py REV [REV ...] [--against REV2] [--n 3000] [--rounds 3] [--sink both]
                                          [--digest-window 5] [--latency 20] [--profile S]

REV (any commit, e.g. ``467e91f`` or ``main``) is exported with ``git archive`` into
/tmp/omitama-compare/<sha> (no worktree registered, nothing in this repository changes) and
its worker runs with this tree's virtualenv, ``PYTHONPATH`` and the working directory set
to the export so that its own ``worker`` package is imported, not the editable install of
this one (checked before anything is measured). A commit that needs a package this tree
does not (so this virtualenv lacks it) needs its own virtualenv: compare.py refuses it; an
older commit that needs fewer runs as it is.

Each round, per sink: raw, tree A, raw, tree B, raw (…) — every worker run is divided by
the mean of the raw runs on either side of it (the machine's speed drifts within minutes),
and each tree leads in turn. Each worker run has a fresh key space; its
patrons are set up by this tree's store (the patron hash is the same in every commit
since 467e91f). Then, per tree: the digest path (the shipped default, with a short window
so the sitting stays short: the bookkeeping per hold is the same), latency at 50 events/s
with ``gather_s = 0`` into aiosmtpd, and the peak RSS of a worker process.

``--profile S``: one more run per tree into smtp-sink (or the one ``--sink``) under ``py-spy record`` for S
seconds (the ``bench`` extra: ``pip install -e '.[bench]'``), one flame graph per worker
process in /tmp/omitama-bench-logs, and the top functions by own time printed.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (LOG_DIR, PY, ROOT, activate_patrons, key_space, make_sink,  # noqa: E402
                    prebuilt, raw_rate, worker_rate)
import latency  # noqa: E402
import throughput  # noqa: E402

SCRATCH = Path("/tmp/omitama-compare")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def export(rev: str) -> Path:
    """The tree of ``rev`` under /tmp/omitama-compare/<sha> (kept for the next sitting)."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    tree = SCRATCH / sha[:12]
    if not (tree / "worker").is_dir():
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir(parents=True)
        data = subprocess.run(["git", "archive", sha], cwd=ROOT, check=True,
                              capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(tree)
    ours = (ROOT / "pyproject.toml").read_text()
    theirs = (tree / "pyproject.toml").read_text()
    missing = sorted(set(_deps(theirs)) - set(_deps(ours)))
    if missing:
        raise SystemExit(f"{rev}: needs {', '.join(missing)}, which this tree's virtualenv "
                         f"lacks; make a virtualenv for it and run its own bench instead")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    got = subprocess.run([PY, "-c", "import worker; print(worker.__file__)"], cwd=tree, env=env,
                         check=True, capture_output=True, text=True).stdout.strip()
    if not got.startswith(str(tree)):
        raise SystemExit(f"{rev}: its worker package would not be imported (got {got})")
    return tree


def _deps(pyproject: str) -> list[str]:
    """The runtime dependencies' names (versions may move within what the venv has)."""
    import re
    import tomllib
    deps = tomllib.loads(pyproject)["project"]["dependencies"]
    return sorted(re.split(r"[<>=;\[ ]", d, maxsplit=1)[0].lower() for d in deps)


def sink_round(kind: str, n: int, trees: list[Path], names: dict[Path, str],
               notices: list[Any], out: dict[tuple[str, Path], list[dict[str, float]]]) -> None:
    sink = make_sink(kind)
    try:
        raws = [raw_rate(sink, notices)]
        runs = []
        for tree in trees:
            with key_space() as space:
                activate_patrons(space, n)
                runs.append(worker_rate(space, sink, n, tree=tree))
            raws.append(raw_rate(sink, notices))
    finally:
        sink.stop()
    for i, (tree, w) in enumerate(zip(trees, runs)):
        raw = (raws[i] + raws[i + 1]) / 2
        if w["extra"] or w["errors"]:
            print(f"  WARNING {names[tree]}: {w['extra']} extra mails, errors: {w['errors'][:3]}")
        r = {"raw": raw, "rate": w["rate"], "ratio": w["rate"] / raw, "cpu_ms": w["cpu_ms"],
             "rss_mb": w["rss_mb"]}
        out[(kind, tree)].append(r)
        print(f"  {kind:9s} {names[tree]:>12s}: raw {raw:6.0f}/s worker {w['rate']:6.0f}/s "
              f"ratio {r['ratio']:.2f} CPU {w['cpu_ms']:.2f} ms/notice RSS {w['rss_mb']:.0f} MB",
              flush=True)


def spread(values: list[float], fmt: str) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def profile(tree: Path, kind: str, n: int, seconds: float, tag: str) -> None:
    """One run into the ``kind`` sink with py-spy attached to each worker process."""
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(spy).exists():
        print("  py-spy missing: .venv/bin/python -m pip install -e '.[bench]'")
        return
    from common import Worker, enqueue_raw, hold_event, queue_drained
    import time
    LOG_DIR.mkdir(exist_ok=True)
    sink = make_sink(kind)
    try:
        with key_space() as space:
            activate_patrons(space, n)
            w = Worker(space, sink.port, tree=tree)
            client = space.client()
            try:
                procs = []
                for pid in w.worker_pids():
                    raw = LOG_DIR / f"profile-{tag}-{pid}.txt"
                    procs.append((raw, subprocess.Popen(
                        [spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200", "--gil",
                         "-f", "raw", "-o", str(raw)], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)))
                time.sleep(1.0)
                enqueue_raw(client, space.namespace, [hold_event(i, space.run) for i in range(n)])
                for _, p in procs:
                    p.wait()
                done = sink.count()  # the notices the samples cover
                deadline = time.monotonic() + 120
                while not queue_drained(client, space.namespace) and time.monotonic() < deadline:
                    time.sleep(0.1)
            finally:
                w.stop()
                client.close()
    finally:
        sink.stop()
    print(f"  {tag}: {done} notices while sampled (200 Hz, GIL held: a sample is 5 ms "
          f"of Python; µs per notice = 5000 × samples / notices)")
    (LOG_DIR / f"profile-{tag}.notices").write_text(str(done))
    for raw, _ in procs:
        print(f"  {tag}: {raw}")
        own: dict[str, int] = {}
        total = 0
        for line in raw.read_text().splitlines() if raw.exists() else []:
            stack, _, count = line.rpartition(" ")
            leaf = stack.rsplit(";", 1)[-1]
            own[leaf] = own.get(leaf, 0) + int(count)
            total += int(count)
        for leaf, c in sorted(own.items(), key=lambda x: -x[1])[:15]:
            print(f"    {100 * c / max(total, 1):5.1f} %  {leaf[:110]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rev", nargs="+", help="the commit(s) to compare this tree with, "
                    "e.g. 467e91f main")
    ap.add_argument("--against", metavar="REV2", default=None,
                    help="compare with REV2's tree instead of this working tree (so this "
                         "tree can be edited while the sitting runs)")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sink", choices=["aiosmtpd", "smtp-sink", "both"], default="both")
    ap.add_argument("--digest-window", type=float, default=5.0,
                    help="digest window for the digest runs, s (0: skip them)")
    ap.add_argument("--latency", type=float, default=20.0,
                    help="seconds at 50 events/s per tree (0: skip)")
    ap.add_argument("--profile", type=float, default=0.0, metavar="S",
                    help="also profile each tree's workers for S s with py-spy")
    a = ap.parse_args()
    ours = export(a.against) if a.against else ROOT
    names = {ours: a.against or "this tree"}
    for rev in a.rev:
        names.setdefault(export(rev), rev)
    order = list(names)
    kinds = ["aiosmtpd", "smtp-sink"] if a.sink == "both" else [a.sink]
    with key_space() as space:
        notices = prebuilt(space, a.n)
    out: dict[tuple[str, Path], list[dict[str, float]]] = {(k, t): [] for k in kinds
                                                            for t in names}
    digests: dict[Path, list[dict[str, float]]] = {t: [] for t in names}
    for r in range(a.rounds):
        trees = order[r % len(order):] + order[:r % len(order)]  # each leads in turn
        print(f"round {r + 1}: {' then '.join(names[t] for t in trees)}", flush=True)
        for kind in kinds:
            sink_round(kind, a.n, trees, names, notices, out)
        if a.digest_window > 0:
            for tree in trees:
                if (tree / "worker" / "app" / "digest.py").exists():
                    d = throughput.digest_rate("smtp-sink", a.n, 3, a.digest_window, tree=tree)
                    digests[tree].append(d)
                    print(f"  digest    {names[tree]:>12s}: {d['mails']} mails, after the "
                          f"window {d['mails_s']:.0f} mails/s {d['holds_s']:.0f} holds/s, "
                          f"CPU {d['cpu_ms']:.2f} ms/hold", flush=True)
    lat: dict[Path, dict[str, float]] = {}
    if a.latency > 0:
        for tree in names:
            lat[tree] = latency.measure(50.0, a.latency, tree=tree)
    if a.profile > 0:
        for tree in names:
            # into smtp-sink, unless --sink names the other alone
            profile(tree, kinds[-1], a.n, a.profile,
                    "this" if tree == ours else names[tree].replace("/", "_"))

    this = (ours.name if a.against else
            git("rev-parse", "--short", "HEAD")
            + (" + changes" if git("status", "--porcelain", "--untracked-files=no") else ""))
    print(f"\nN = {a.n}, {a.rounds} rounds alternating, medians (min–max); "
          f"{names[ours]} = {this}")
    print("| sink | tree | raw mails/s | worker mails/s | ratio to raw | CPU per notice | peak RSS |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for kind in kinds:
        for tree in names:
            rs = out[(kind, tree)]
            if not rs:
                continue
            print(f"| {kind} | {names[tree]} | {spread([x['raw'] for x in rs], '.0f')} | "
                  f"{spread([x['rate'] for x in rs], '.0f')} | "
                  f"{spread([x['ratio'] for x in rs], '.2f')} | "
                  f"{spread([x['cpu_ms'] for x in rs], '.2f')} ms | "
                  f"{max(x['rss_mb'] for x in rs):.0f} MB |")
    for tree, ds in digests.items():
        if ds:
            print(f"| digest ({a.digest_window:g} s window, 3 holds/card), smtp-sink | "
                  f"{names[tree]} | | {spread([d['mails_s'] for d in ds], '.0f')} mails/s, "
                  f"{spread([d['holds_s'] for d in ds], '.0f')} holds/s after the window | | "
                  f"{spread([d['cpu_ms'] for d in ds], '.2f')} ms per hold | |")
    if lat:
        print("\n| latency at 50 events/s, gather_s = 0, aiosmtpd | p50 | p99 (< 100 ms) | max "
              "| missing | peak RSS (< 120 MB) |")
        print("|---|---:|---:|---:|---:|---:|")
        for tree, x in lat.items():
            print(f"| {names[tree]} | {x['p50']:.0f} ms | {x['p99']:.0f} ms | {x['max']:.0f} ms |"
                  f" {x['missing']} | {x['rss_mb']:.0f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

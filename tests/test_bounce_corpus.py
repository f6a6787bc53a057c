"""Acceptance: the bounce classifier against the labelled public corpus.

Targets (skip rows whose label is a delay warning): reason as Sisimai says on >= 90 % of
rows, reason right on >= 97 % counting our documented deviations from Sisimai (below),
is_bounce right on >= 97 %, and all files classified in under 10 seconds.

Deliberate deviations (issue 10): where Sisimai says ``filtered`` only because the bounce
names no SMTP command, and the text says "user unknown" with no word of a filter, we say
``userunknown`` — staff must not ask a patron to change a phone setting for an address that
does not exist.  And Exim's plain-text "delayed 24 hours" warning is ``delayed``, never a
failure, whatever reason the delay had.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path

import pytest

from worker.bounces import BounceResult, classify_mail
from worker.bounces.rules import included

#: ../shared/bounce-corpus beside the checkout; BOUNCE_CORPUS names it when the checkout is
#: elsewhere (a git worktree, a CI cache).
CORPUS = Path(os.environ.get("BOUNCE_CORPUS") or
              Path(__file__).resolve().parents[1].parent / "shared" / "bounce-corpus")
REASON_TARGET = 0.90
AGREED_TARGET = 0.97
IS_BOUNCE_TARGET = 0.97
SECONDS_LIMIT = 10.0


def _deliberate(row: dict, got: BounceResult | None) -> bool:
    """Whether ``got`` differs from Sisimai's label by one of our documented deviations."""
    if got is None:
        return False
    text = (got.diagnostic or "").lower()
    if row["reason"] == "filtered" and got.reason == "userunknown":
        return included("userunknown", text) and not included("filtered", text)
    return got.reason == "delayed" and str(row.get("status") or "").startswith("4")


def _match(row: dict, results: list[BounceResult]) -> BounceResult | None:
    wanted = (row.get("recipient") or "").lower()
    for result in results:
        if wanted and result.recipient and result.recipient.lower() == wanted:
            return result
    return results[0] if len(results) == 1 else None


@pytest.fixture(scope="module")
def scored() -> dict:
    if not (CORPUS / "labels.jsonl").is_file():
        why = f"bounce corpus not found at {CORPUS} (expected ../shared beside the checkout)"
        if os.environ.get("CI"):  # CI has ../shared: a missing corpus there is a failure
            pytest.fail(why)
        pytest.skip(why)
    rows = [json.loads(line) for line in (CORPUS / "labels.jsonl").read_text().splitlines() if line]
    files = sorted((CORPUS / "mail").iterdir())
    started = time.perf_counter()
    results = {f"mail/{f.name}": classify_mail(f.read_bytes()) for f in files}
    elapsed = time.perf_counter() - started

    per_reason: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    reason_ok = reason_n = bounce_ok = bounce_n = deviations = 0
    misses: list[str] = []
    for row in rows:
        if row.get("delay_warning"):
            continue
        match = _match(row, results[row["file"]])
        got = match.reason if match else None
        reason_n += 1
        per_reason[str(row["reason"])][1] += 1
        if got == row["reason"]:
            reason_ok += 1
            per_reason[str(row["reason"])][0] += 1
        elif _deliberate(row, match):
            deviations += 1
        else:
            misses.append(f"{row['file']}: want {row['reason']}, got {got}")
        if row.get("is_bounce") is not None:
            bounce_n += 1
            bounce_ok += bool(match is not None and (match.is_bounce == row["is_bounce"]
                                                     or match.reason == "delayed"
                                                     and _deliberate(row, match)))
    report = [f"files: {len(files)} in {elapsed:.2f} s",
              f"reason as Sisimai: {reason_ok}/{reason_n} = {reason_ok / reason_n:.3f}",
              f"reason with {deviations} documented deviations: {reason_ok + deviations}/{reason_n}"
              f" = {(reason_ok + deviations) / reason_n:.3f}",
              f"is_bounce: {bounce_ok}/{bounce_n} = {bounce_ok / bounce_n:.3f}"]
    report += [f"  {name:16} {ok:3}/{n:3}" for name, (ok, n) in sorted(per_reason.items())]
    print("\n".join(report))
    return {"elapsed": elapsed, "files": len(files), "reason": reason_ok / reason_n,
            "agreed": (reason_ok + deviations) / reason_n,
            "is_bounce": bounce_ok / bounce_n, "report": "\n".join(report), "misses": misses}


def test_reason_accuracy(scored: dict) -> None:
    assert scored["reason"] >= REASON_TARGET, (
        scored["report"] + "\nmisses:\n" + "\n".join(scored["misses"]))


def test_reason_accuracy_with_documented_deviations(scored: dict) -> None:
    assert scored["agreed"] >= AGREED_TARGET, (
        scored["report"] + "\nmisses:\n" + "\n".join(scored["misses"]))


def test_is_bounce_accuracy(scored: dict) -> None:
    assert scored["is_bounce"] >= IS_BOUNCE_TARGET, scored["report"]


def test_whole_corpus_is_fast(scored: dict) -> None:
    assert scored["files"] == 357
    assert scored["elapsed"] < SECONDS_LIMIT, scored["report"]

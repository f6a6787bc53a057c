"""``bounces ingest`` with input over the size limit (issue 14 #8): refused as a whole in
one line with a non-zero exit — never cut and the stump classified (an mbox on stdin
used to lose every mail after the cut without a word)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.app.ingest import MAX_MAIL_BYTES

ROOT = Path(__file__).resolve().parents[1]
MAIL = (b"From: reader@example.jp\r\nTo: lib@example.jp\r\nSubject: thanks\r\n"
        b"Message-ID: <%d@example.jp>\r\n\r\nsee you at the library\r\n")


def ingest(path: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "worker.cli.main", "bounces", "ingest", path],
                          input=stdin, capture_output=True, cwd=ROOT, timeout=120, env=os.environ)


def mbox(*mails: bytes) -> bytes:
    return b"".join(b"From MAILER-DAEMON Thu Nov 26 10:00:00 2026\n" + m.replace(b"\r\n", b"\n")
                    + b"\n" for m in mails)


@pytest.mark.parametrize("what", ["one mail", "an mbox"])
def test_stdin_over_the_limit_is_refused_whole(clean_redis, what):
    big = MAIL % 1 + b"x" * (MAX_MAIL_BYTES + 10)
    data = big if what == "one mail" else mbox(MAIL % 1, big, MAIL % 2)
    r = ingest("-", data)
    lines = r.stderr.decode().strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr[-2000:]
    assert "<stdin>: the input is larger than 25 MB; nothing was ingested" in lines[0]
    assert r.stdout == b""  # not a single mail classified
    assert not [k for k in clean_redis.scan_iter(f"{os.environ['OMITAMA_NOTIFY_REDIS__KEY_PREFIX']}*")]


def test_a_mail_file_over_the_limit_is_refused_whole(clean_redis, tmp_path):
    f = tmp_path / "huge.eml"
    f.write_bytes(MAIL % 1 + b"x" * (MAX_MAIL_BYTES + 10))
    r = ingest(str(f))
    lines = r.stderr.decode().strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "larger than 25 MB" in lines[0], r.stderr
    assert r.stdout == b""


def test_in_a_folder_an_over_size_mail_is_one_unreadable_mail(clean_redis, tmp_path):
    (tmp_path / "a.eml").write_bytes(MAIL % 1)
    (tmp_path / "b.eml").write_bytes(MAIL % 2 + b"x" * (MAX_MAIL_BYTES + 10))
    (tmp_path / "c.eml").write_bytes(MAIL % 3)
    r = ingest(str(tmp_path))
    out = r.stdout.decode()
    assert r.returncode == 1, r.stderr  # one mail unreadable; the exit status says so
    assert "b.eml: unreadable: mail larger than 25 MB" in out
    assert "a.eml: " in out and "c.eml: " in out and "mails 3," in out


def test_stdin_at_the_limit_is_ingested(clean_redis):
    data = mbox(MAIL % 1, MAIL % 2)
    r = ingest("-", data + b" " * (MAX_MAIL_BYTES - len(data)))
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "<stdin>#0: " in out and "<stdin>#1: " in out and "mails 2," in out

"""The sections of how the worker behaves: processes, retries, retention, registration,
logging, digests, reminders, the outcome stream, staff writes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from .section import DAY_S, YEARS_10, _Section


class WorkerSettings(_Section):
    processes: int = Field(1, ge=1, le=64)
    threads: int = Field(8, ge=1, le=256)


class DeliverySettings(_Section):
    min_backoff_s: float = Field(30, gt=0, le=DAY_S)
    max_backoff_s: float = Field(1800, gt=0, le=DAY_S)
    # give up on a relay that keeps failing after this long, whatever the deadline
    max_retry_hours: float = Field(24, gt=0, le=24 * 60)
    # retries stop this many hours before the pickup window closes, so staff can still phone
    phone_margin_hours: float = Field(48, ge=0, le=24 * 60)
    # how long a worker may hold a hold's "sending" lease before another may take over
    lease_s: float = Field(120, gt=0, le=DAY_S)
    # how often each worker process looks for holds and messages that went missing
    sweep_interval_s: float = Field(30, gt=0, le=DAY_S)
    # moved to [retention] hold_days: a file that still sets it is refused with that pointer
    retention_days: int | None = None

    @field_validator("max_backoff_s")
    @classmethod
    def _cap_above_start(cls, v: float, info: ValidationInfo) -> float:
        low = info.data.get("min_backoff_s")
        if low is not None and v < low:
            raise ValueError(f"must be at least min_backoff_s ({low:g}): the longest wait "
                             "between retries cannot be shorter than the first")
        return v

    @field_validator("retention_days")
    @classmethod
    def _moved(cls, v: int | None) -> None:
        if v is not None:
            raise ValueError("moved: set [retention] hold_days instead")
        return None


class RetentionSettings(_Section):
    """How long each kind of record keeps personal data (docs/operations.md, "Retention";
    the rules are worker/holds/retention.py). Days count from the record's own date."""

    # a hold's record (ids, card, outcome, dates; title and name are dropped when the hold
    # closes) lives this long past its pickup window: late bounces are traced through it
    hold_days: int = Field(30, ge=1, le=YEARS_10)
    # refused events (their raw payload included): long enough for the ILS team to fix
    # the producer
    refused_days: int = Field(30, ge=0, le=YEARS_10)
    # staff's records of calls made (`called`), delivery failures, the bounce-mail log
    called_days: int = Field(90, ge=0, le=YEARS_10)
    failures_days: int = Field(90, ge=0, le=YEARS_10)
    bounces_days: int = Field(90, ge=0, le=YEARS_10)
    # a patron's audit log (state changes, approvals, calls): entries older than this go
    audit_days: int = Field(400, ge=0, le=YEARS_10)
    # .eml files of the outbox transport
    outbox_days: int = Field(7, ge=0, le=YEARS_10)
    # the library's statistics (counts per day and branch; no personal data): years
    stats_days: int = Field(3660, ge=1, le=YEARS_10 * 3)
    # the worker runs the purge once a day, at this hour (Tokyo) or at its first start after
    purge_hour: int = Field(3, ge=0, le=23)


class RegistrationSettings(_Section):
    # how long the receipt code in the confirmation mail stays valid
    code_ttl_days: float = Field(14, gt=0, le=365)
    # wrong codes before the code locks (staff may still approve without it, with a reason)
    max_code_tries: int = Field(5, ge=1, le=20)
    # check the address's domain in DNS on registration (off: offline machines refuse all)
    check_dns: bool = False


class LoggingSettings(_Section):
    # "json": one JSON object per line (for a log collector); "text": dramatiq's lines
    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # each worker process logs what it did with hold notices this often (0: never)
    summary_interval_s: float = Field(60.0, ge=0, le=DAY_S)


class DigestSettings(_Section):
    # hold_ready events of one card for one pickup branch arriving within this many
    # seconds of the first go out as one mail; 0: one mail per hold. 900 s: staff trap
    # the day's holds in a run of a few minutes, three times a day, so one run's holds
    # for a family arrive within minutes of each other; a notice for an item kept a week
    # loses nothing by waiting 15 minutes (see worker/app/digest.py)
    gather_s: float = Field(900, ge=0, le=86400)


class ReminderSettings(_Section):
    # one 「お取り置き期限が近づいています」 mail per mailed hold not yet collected,
    # days_before its last day at hour (JST); off by default (worker/app/reminders.py)
    enabled: bool = False
    days_before: int = Field(1, ge=0, le=14)
    hour: int = Field(10, ge=0, le=23)


class OutcomeSettings(_Section):
    # the outcome stream (<key_prefix>outcomes) keeps about this many entries
    # (trimmed with MAXLEN ~): days of outcomes for an ILS that reads it now and then
    maxlen: int = Field(100_000, ge=100, le=1_000_000_000)


class StaffWritesSettings(_Section):
    # a staff action (approve, reject, remove, re-enable, a call marked done or undone) is
    # reported done only once this many replicas have it (Redis WAIT; worker/store/replicas.py).
    # 0: one Redis, no WAIT sent at all. With Sentinel: 1 (see "High availability")
    replicas: int = Field(0, ge=0, le=5)
    # how long one action waits for them; then staff are told to repeat it
    timeout_ms: int = Field(500, ge=10, le=10_000)

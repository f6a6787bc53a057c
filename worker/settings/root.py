"""The whole settings object: every section, the library's branches, and the folders
relative paths are resolved against."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from .connections import MetricsSettings, RedisSettings, SmtpSettings, WebSettings
from .policy import (DeliverySettings, DigestSettings, LoggingSettings, OutcomeSettings,
                     RegistrationSettings, ReminderSettings, RetentionSettings,
                     StaffWritesSettings, WorkerSettings)
from .section import _Section
from .sending import BounceSettings, DkimSettings, DomainCheckSettings, MailSettings
from .source import PROJECT_ROOT, shipped_dir


class Branch(_Section):
    name: str
    address: str
    phone: str
    hours: str = ""


class Settings(_Section):
    redis: RedisSettings = RedisSettings()
    smtp: SmtpSettings = SmtpSettings()
    mail: MailSettings = MailSettings()
    worker: WorkerSettings = WorkerSettings()
    delivery: DeliverySettings = DeliverySettings()
    retention: RetentionSettings = RetentionSettings()
    registration: RegistrationSettings = RegistrationSettings()
    bounces: BounceSettings = BounceSettings()
    web: WebSettings = WebSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    outcomes: OutcomeSettings = OutcomeSettings()
    staff_writes: StaffWritesSettings = StaffWritesSettings()
    digest: DigestSettings = DigestSettings()
    reminder: ReminderSettings = ReminderSettings()
    dkim: DkimSettings = DkimSettings()
    domain_check: DomainCheckSettings = DomainCheckSettings()
    branches: dict[str, Branch]
    # folder relative data paths (outbox_dir, var/) are resolved against
    base_dir: Path = PROJECT_ROOT
    # folder of the settings file: a relative templates_dir is looked for there first
    config_dir: Path = PROJECT_ROOT
    # which settings file was used, and why (printed by `check` and at worker start)
    source: str = ""

    @field_validator("branches")
    @classmethod
    def _some_branches(cls, v: dict[str, Branch]) -> dict[str, Branch]:
        if not v:
            raise ValueError("at least one branch is needed")
        return v

    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else self.base_dir / p

    @property
    def outbox_dir(self) -> Path:
        return self.path(self.mail.outbox_dir)

    @property
    def templates_dir(self) -> Path:
        """Absolute as given; relative: beside the settings file if that folder exists,
        else the shipped templates (an operator's file copied from the shipped one names
        templates/mail without copying the templates)."""
        p = self.mail.templates_dir
        if p.is_absolute():
            return p
        own, shipped = self.config_dir / p, shipped_dir() / p
        return shipped if not own.is_dir() and shipped.is_dir() else own

    @property
    def dkim_on(self) -> bool:
        return bool(self.dkim.key_file)

    @property
    def var_dir(self) -> Path:
        return self.base_dir / "var"

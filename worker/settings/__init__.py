"""Typed settings: ``settings.toml`` plus ``OMITAMA_NOTIFY_<SECTION>__<KEY>`` overrides.

Loaded once per process (:func:`get_settings`) and passed explicitly to the code
that needs it; domain code never reads the environment itself. A bad or missing
setting raises :class:`~worker.errors.ConfigError` naming the key, which the CLI
prints as one line before exiting.

Import every name from here; the modules are the parts of one job each:
``source.py`` picks the file (and the folders relative paths mean), ``loader.py`` reads
it and lays the environment over it, ``root.py`` is the whole object, its sections are
in ``connections.py``, ``sending.py`` and ``policy.py`` (on the base in ``section.py``),
and ``checks.py`` holds the checks of values written as text.
"""

from .checks import check_return_path, check_sentinel_addr
from .connections import MetricsSettings, RedisSettings, SmtpSettings, WebSettings
from .loader import ENV_PREFIX, get_settings, load_settings
from .policy import (DeliverySettings, DigestSettings, LoggingSettings, OutcomeSettings,
                     RegistrationSettings, ReminderSettings, RetentionSettings,
                     StaffWritesSettings, WorkerSettings)
from .root import Branch, Settings
from .section import DAY_S, YEARS_10
from .sending import BounceSettings, DkimSettings, DomainCheckSettings, MailSettings
from .source import (ENV_FILE, ETC_FILE, PROJECT_ROOT, SHIPPED_IN_PACKAGE, STATE_DIR,
                     SettingsSource, find_settings, shipped_dir)

__all__ = [
    "DAY_S", "ENV_FILE", "ENV_PREFIX", "ETC_FILE", "PROJECT_ROOT", "SHIPPED_IN_PACKAGE",
    "STATE_DIR", "YEARS_10", "BounceSettings", "Branch", "DeliverySettings", "DigestSettings",
    "DkimSettings", "DomainCheckSettings", "LoggingSettings", "MailSettings",
    "MetricsSettings", "OutcomeSettings", "RedisSettings", "RegistrationSettings",
    "ReminderSettings", "RetentionSettings", "Settings", "SettingsSource", "SmtpSettings",
    "StaffWritesSettings", "WebSettings", "WorkerSettings", "check_return_path",
    "check_sentinel_addr", "find_settings", "get_settings", "load_settings", "shipped_dir",
]

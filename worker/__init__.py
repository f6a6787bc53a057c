"""omitama-notify: hold-ready notices for Omitama City Library."""

__version__ = "0.1.0"

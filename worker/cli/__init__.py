"""The omitama-notify command and its subcommands."""

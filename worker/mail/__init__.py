"""Mail: rendering the notices (pure) and handing them to the relay (transport)."""

"""The ILS's side of the contract: the events it sends (pure)."""

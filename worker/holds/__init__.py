"""The rules of a hold notice: deadlines, retries (pure)."""

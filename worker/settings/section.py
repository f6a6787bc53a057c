"""What every section model shares, and the bounds of its numbers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# upper bounds of numeric settings: far beyond any sensible value, below any overflow
DAY_S = 86_400
YEARS_10 = 3650


class _Section(BaseModel):
    # inf and nan are refused: a non-finite duration overflows where it is used (a
    # timedelta, a Redis expiry), far from the file that set it
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

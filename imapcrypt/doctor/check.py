"""One line of `imapcrypt doctor`: what was checked, the verdict, and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["OK", "WARN", "FAIL"]


@dataclass(frozen=True)
class Check:
    """One doctor line: what was checked, the verdict, what was found, and the fix if any."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def line(self) -> str:
        """The check as one printed line."""
        text = f"{self.status:<4}  {self.name}: {self.detail}"
        return f"{text} (fix: {self.fix})" if self.fix and self.status != "OK" else text

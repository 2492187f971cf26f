"""An objective's direction: the one enum, its sign, and the one check of a direction's name."""

from __future__ import annotations

from enum import Enum

from explorer.errors import SoupError


class Direction(str, Enum):
    """Which way an objective improves. Members compare equal to their names ("maximize")."""

    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"

    @property
    def sign(self) -> int:
        """+1 when larger is better, -1 when smaller is: ``sign * score`` is always maximized."""
        return 1 if self is Direction.MAXIMIZE else -1

    @classmethod
    def of(cls, value: object, *, what: str = "direction") -> Direction:
        """``value`` ("maximize"/"max"/"minimize"/"min" or a Direction) as a Direction, else a SoupError."""
        text = value.value if isinstance(value, Direction) else str(value).strip().lower()
        text = {"max": "maximize", "min": "minimize"}.get(text, text)
        try:
            return cls(text)
        except ValueError:
            raise SoupError(f"{what} must be 'maximize' or 'minimize', got {value!r}") from None

    def __str__(self) -> str:
        return self.value


MAXIMIZE, MINIMIZE = Direction.MAXIMIZE, Direction.MINIMIZE

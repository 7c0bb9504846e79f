"""Faults on demand: the probabilities with which the sandbox fails a request the ways Iconik and the network
do (5xx, 409, a connection dropped before or after a write, a write applied late, a slow answer, a revoked
token), parsed from the `--faults` option. The server draws against them (http_server)."""

import dataclasses
from typing import Any, ClassVar


@dataclasses.dataclass
class Faults:
    """Per-request fault probabilities. Writes are POST, PUT, PATCH and DELETE; a search is a read."""

    server_error: float = 0.0     # 503 on any request under /API/assets
    conflict: float = 0.0         # 409 on a write, not applied
    drop_before: float = 0.0      # a write's connection closed before it is applied
    drop_after: float = 0.0       # a write applied, then its connection closed with no answer
    apply_late: float = 0.0       # a write's connection closed at once, the write applied late_min..max_ms later
    late_min_ms: int = 500
    late_max_ms: int = 4000
    slow: float = 0.0             # an answer delayed by slow_ms, after a write was applied
    slow_ms: int = 2000
    revoke_after: int = 0         # after this many requests the token stops working (401); 0 = never

    _NAMES: ClassVar[dict[str, str]] = {
        "5xx": "server_error", "409": "conflict", "drop_before": "drop_before", "drop_after": "drop_after",
        "apply_late": "apply_late", "late_min_ms": "late_min_ms", "late_max_ms": "late_max_ms", "slow": "slow",
        "slow_ms": "slow_ms", "revoke_after": "revoke_after"}

    @classmethod
    def parse(cls, spec: str | None) -> "Faults":
        """'5xx=0.05,409=0.02,drop_before=0.01,drop_after=0.01,apply_late=0.02,slow=0.01,slow_ms=3000'."""
        values: dict[str, Any] = {}  # each of its field's type (_value)
        for part in filter(None, (p.strip() for p in (spec or "").split(","))):
            name, equals, text = (piece.strip() for piece in part.partition("="))
            field = cls._NAMES.get(name)
            if field is None:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(cls._NAMES)}")
            if not equals or not text:
                raise ValueError(f"{name} needs a value, e.g. {name}={cls._example(field)}")
            values[field] = cls._value(name, field, text)
        faults = cls(**values)
        if faults.late_min_ms > faults.late_max_ms:
            raise ValueError(f"late_min_ms={faults.late_min_ms} is above late_max_ms={faults.late_max_ms}")
        return faults

    @classmethod
    def _example(cls, field: str) -> str:
        return "0.05" if isinstance(getattr(cls, field), float) else "1000"

    @classmethod
    def _value(cls, name: str, field: str, text: str) -> float | int:
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{name}={text}: not a number") from None
        if isinstance(getattr(cls, field), float):
            if not 0.0 <= number <= 1.0:
                raise ValueError(f"{name}={text}: a probability is between 0 and 1")
            return number
        if number < 0 or number != int(number):
            raise ValueError(f"{name}={text}: must be a whole number, 0 or more")
        return int(number)

"""What the tracer saw: misuses, each at the user's line, counted and de-duplicated."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Event:
    """One misuse at one line: how often it happened, and what the first time looked like."""

    code: str
    path: str
    line: int
    message: str
    count: int = 1
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class EventLog:
    """Events de-duplicated per code and line: a misuse in a training loop is one event
    with a count, not one per step."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str, int], Event] = {}

    def add(self, code: str, where: tuple[str, int], message: str, detail: str = "") -> Event:
        key = (code, *where)
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = Event(code, where[0], where[1], message, detail=detail)
        else:
            event.count += 1
        return event

    def events(self) -> list[Event]:
        return sorted(self._events.values(), key=lambda e: (e.path, e.line, e.code))

    def __len__(self) -> int:
        return len(self._events)

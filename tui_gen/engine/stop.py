"""Stop strings that may span several tokens, without ever showing part of one.

Text that could still turn into a stop string is held back until it either completes one (then
it is dropped and generation stops) or stops matching (then it is released).

A branched reply (Generator.stream_events(prefix_ids=...)) starts with text that was shown
already: it is given as `prefix`, counts for the stop strings (one may start in it) and is
never released again.
"""

from __future__ import annotations


class StopStringMatcher:
    """Feed text deltas in; get back what is safe to show and whether a stop string was hit."""

    def __init__(self, stop_strings: list[str] | tuple[str, ...] = (), prefix: str = "") -> None:
        self.stop_strings = [s for s in stop_strings if s]
        self._text = prefix  # everything generated so far (up to a stop string, once hit)
        self._emitted = len(prefix)  # how much of _text has been released (or needs not be)
        self._scan = 0  # where a stop string may still start: the text before it is safe
        self.hit: str | None = None
        if prefix:
            self.feed("")  # the prefix may hold a stop string already

    @property
    def text(self) -> str:
        """The released text plus anything still held back (without a hit stop string)."""
        return self._text

    def feed(self, delta: str) -> tuple[str, bool]:
        """Add a delta; return (text now safe to show, True when a stop string completed)."""
        if self.hit is not None:
            return "", True
        self._text += delta
        if not self.stop_strings:
            out = self._text[self._emitted :]
            self._emitted = len(self._text)
            return out, False
        # A stop string can only start in the part not yet known safe (see `_held_back`).
        first: int | None = None
        for s in self.stop_strings:
            i = self._text.find(s, self._scan)
            if i != -1 and (first is None or i < first):
                first, self.hit = i, s
        if first is not None:
            out = self._text[self._emitted : first]
            self._text = self._text[:first]
            self._emitted = self._scan = min(self._emitted, first)
            return out, True
        safe = len(self._text) - self._held_back()
        out = self._text[self._emitted : safe]
        self._emitted = max(self._emitted, safe)
        self._scan = max(self._scan, safe)
        return out, False

    def _held_back(self) -> int:
        """Length of the longest suffix of the text that is a proper prefix of a stop string."""
        best = 0
        tail_start = self._scan
        for s in self.stop_strings:
            for k in range(min(len(s) - 1, len(self._text) - tail_start), best, -1):
                if self._text.endswith(s[:k]):
                    best = k
                    break
        return best

    def close(self, pending: str = "") -> str:
        """The text a stream releases at its end when no stop string ended it: the detokenizer's
        `pending` characters (which may still complete a stop string) and what was held back."""
        if self.hit is not None:
            return ""
        released, _ = self.feed(pending)
        return released + self.flush()

    def flush(self) -> str:
        """Release whatever was held back (generation ended for another reason)."""
        out = self._text[self._emitted :]
        self._emitted = len(self._text)
        return out

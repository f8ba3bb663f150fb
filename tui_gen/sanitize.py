"""Make model output safe to put on screen: no terminal control sequences, no control characters.

A model is a stranger's program: its text may contain ESC sequences (colours, cursor moves, OSC 52
clipboard writes, window titles) or raw control characters. Textual renders text through its own
compositor, but a stray ESC or C1 byte that reached the terminal could still corrupt the display
or worse, so everything the app shows, saves or exports goes through :func:`sanitize` first.

Rules (one pure function, tested with Hypothesis):

* complete ESC sequences (CSI, OSC/DCS/SOS/PM/APC with their terminator, two-byte escapes) are
  removed: they are formatting attempts, and showing their bytes would only be noise;
* ``\\r\\n`` and a lone ``\\r`` become ``\\n`` (a bare carriage return would "overwrite" a line);
* every other C0 control, DEL and a lone ESC become their visible Unicode "control picture"
  (``\\x07`` -> ``␇``), and C1 controls (U+0080-U+009F) become U+FFFD, so nothing is hidden
  silently;
* ``\\n`` and ``\\t`` are kept.

Streamed text arrives in pieces that can split a sequence in two; :class:`StreamSanitizer` holds
back a possibly-incomplete tail so that the pieces come out exactly as the whole text would.
"""

from __future__ import annotations

import re

__all__ = ["StreamSanitizer", "sanitize"]

#: complete escape sequences, removed
_ESC_SEQUENCE = re.compile(
    r"""
      \x1b\[[0-?]*[\x20-/]*[@-~]                 # CSI: ESC [ params intermediates final
    | \x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)    # OSC, DCS, SOS, PM, APC ... BEL or ST
    | \x1b[\x20-/]*[0-~]                         # nF, Fp, Fe, Fs escapes (ESC c, ESC ( B, ...)
    """,
    re.VERBOSE,
)

#: a tail that may become an escape sequence (or a CRLF) once the next piece arrives
_INCOMPLETE_TAIL = re.compile(
    r"""
      \x1b(?:\[[0-?]*[\x20-/]*|[\]PX^_][^\x07\x1b]*\x1b?|[\x20-/]*)\Z
    | \r\Z
    """,
    re.VERBOSE,
)

_C0_DEL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_C1 = re.compile(r"[\x80-\x9f]")

#: how much text a stream may hold back waiting for a sequence to end (an unterminated OSC
#: must not swallow the rest of a reply)
MAX_HOLD = 256


def _picture(m: re.Match[str]) -> str:
    code = ord(m.group())
    return "\u2421" if code == 0x7F else chr(0x2400 + code)


def sanitize(text: str) -> str:
    """Return `text` with escape sequences removed and control characters made visible."""
    if text.isprintable() or not text:
        return text  # the common case: nothing to do (\n and \t are not "printable")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ESC_SEQUENCE.sub("", text)
    text = _C0_DEL.sub(_picture, text)
    return _C1.sub("\ufffd", text)


class StreamSanitizer:
    """Sanitize text that arrives in pieces, holding back a tail that could be a split sequence.

    ``feed(a) + feed(b) + flush() == sanitize(a + b)`` for any split (as long as no sequence is
    longer than MAX_HOLD characters).
    """

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        """Sanitize the safe part of everything fed so far; keep a possibly split tail."""
        text = self._held + piece
        if "\x1b" not in text and "\r" not in text:
            self._held = ""
            return sanitize(text)
        m = _INCOMPLETE_TAIL.search(text)
        if m is None or len(text) - m.start() > MAX_HOLD:
            self._held = ""
            return sanitize(text)
        self._held = text[m.start() :]
        return sanitize(text[: m.start()])

    def flush(self) -> str:
        """The held-back tail, sanitized as the end of the text."""
        text, self._held = self._held, ""
        return sanitize(text)

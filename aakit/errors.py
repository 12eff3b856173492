"""User-facing errors: the CLI prints their message on one line and exits with code 2."""
from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: A line that states the error itself ("WeightsUnpickler error: ...", "ValueError: ...").
_CAUSE = re.compile(r"\b(\w+ )?\w*(error|exception)\s*:", re.IGNORECASE)


class AakitError(Exception):
    """A problem caused by the user's input (file, config, layout, argument).

    The message names the problem and where it is (file, key, line or image id).
    """


def reason(e: BaseException, limit: int = 160, text: str | None = None) -> str:
    """Why ``e`` happened, on one line of at most ``limit`` characters: ``"Type: message"``.

    A message of several lines (torch's are) keeps its first line and its cause (see
    :func:`_cause`): ``"Weights only load failed. This file… WeightsUnpickler error: Unsupported
    global: ..."``. Text too long is cut between words, ending with "…".
    """
    lines = [s for s in (_ANSI.sub("", x).strip() for x in str(e).splitlines()) if s]
    prefix = f"{type(e).__name__}: "
    if not lines:
        return type(e).__name__
    head, cause = lines[0], _cause(lines)
    room = max(limit - len(prefix), 20)
    if cause is None:
        return prefix + cut_words(head, room)
    if len(head) + 3 + len(cause) <= room:
        return f"{prefix}{head} … {cause}"
    cause = cut_words(cause, max(room * 2 // 3, room - len(head) - 3))
    if room - len(cause) - 3 < 20:  # no room left for a useful start: the cause alone
        return prefix + cause
    head = cut_words(head, room - len(cause) - 3)
    return f"{prefix}{head}{' ' if head.endswith('…') else ' … '}{cause}"


def _cause(lines: list[str]) -> str | None:
    """The cause in the lines after the first: from the last that names an error ("...
    WeightsUnpickler error: Unsupported global ...", joined with the next line when it ends at
    its colon), else the last line; None for a message of one line."""
    for i in range(len(lines) - 1, 0, -1):
        found = _CAUSE.search(lines[i])
        if found:
            cause = lines[i][found.start():]
            return f"{cause} {lines[i + 1]}" if cause.endswith(":") and i + 1 < len(lines) else cause
    return lines[-1] if len(lines) > 1 else None


def cut_words(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, cut at a space (a single long word is cut
    where it must), ending with "…" when anything was cut."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + "…"

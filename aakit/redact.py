"""Keep secrets out of everything aakit writes down or prints.

A command line such as ``aakit grid t1.yaml --storage postgresql://me:PASSWORD@db/optuna`` is
recorded in every run's ``provenance.json``, and run directories end up committed. The
functions here replace what looks like a credential with ``***``:

* the password of a URL: ``scheme://user:SECRET@host`` -> ``scheme://user:***@host``;
* the value of an option whose name says it holds a secret: ``--password X``, ``--token=X``,
  ``--api-key X``;
* the value of a ``NAME=value`` item (an environment variable, a ``--set`` item, a URL query
  parameter) whose name says so: ``WANDB_API_KEY=...``, ``db.token=...``, ``?sslpassword=...``.

A name holds a secret when it contains ``password``, ``passwd``, ``secret``, ``apikey``/``api_key``,
``private_key``, ``access_key`` or ``credential`` anywhere (so ``PGPASSWORD`` counts), has a part
ending in ``token`` (``HF_TOKEN``, ``authToken``; not ``max_tokens``), has ``pass``, ``pwd`` or
``auth`` as a whole part (``--db-pass``), or ends in a ``key`` part (``SSH_KEY``; a bare ``KEY``, as
in ``KEY=VALUE``, does not count). Normal options (``--set loss.lambda_aa=0.1``) are left alone.

Standard library only: the core, the CLI, the TUI and the report all use it.
"""
from __future__ import annotations

import re
from typing import Iterable

MASK = "***"

_SUBSTRINGS = ("password", "passwd", "passphrase", "secret", "apikey", "privatekey", "accesskey", "credential")
_PARTS = frozenset({"pass", "pwd", "auth"})

# scheme://user:PASSWORD@host -- the password runs to the last '@' of the URL (an unescaped '@'
# in a password is common, and over-masking is harmless).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@'\"<>]*):(?P<pw>[^\s'\"<>]*)@")
# NAME= (NAME may be an --option, or follow another '=': --set=db.token=X); the value follows.
_NAME_EQ = re.compile(r"(?<![\w.\-])(?P<name>-{0,2}[A-Za-z_][\w.\-]*)=")
_VALUE = re.compile(r"\"[^\"]*\"|'[^']*'|[^\s'\",;&]*")
# --option value, in a command line joined into one string.
_OPTION = re.compile(r"(?<![\w.\-])(?P<name>--?[A-Za-z][\w.\-]*)(?P<sep>\s+)(?P<value>\"[^\"]*\"|'[^']*'|[^\s'\"]+)")


def is_secret_name(name: str) -> bool:
    """True if an option, variable or config key called ``name`` holds a secret."""
    name = name.lstrip("-")
    if name.startswith("no-"):  # a boolean flag (--no-auth) holds nothing
        return False
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()  # apiKey -> api_key
    parts = [p for p in re.split(r"[^a-z0-9]+", spaced) if p]
    squashed = "".join(parts)
    return (any(s in squashed for s in _SUBSTRINGS) or any(p in _PARTS for p in parts)
            or any(p.endswith("token") for p in parts)  # HF_TOKEN, authtoken; not max_tokens
            or (len(parts) > 1 and parts[-1] == "key"))  # SSH_KEY; not a bare KEY (KEY=VALUE)


def _mask_url(m: re.Match[str]) -> str:
    return f"{m.group('head')}:{MASK}@" if m.group("pw") else m.group(0)


def _mask_assignments(text: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _NAME_EQ.finditer(text):
        if m.start() < pos or not is_secret_name(m.group("name")):
            continue
        value = _VALUE.match(text, m.end())
        if value is None or not value.group(0):
            continue
        out += [text[pos:m.end()], MASK]
        pos = value.end()
    return "".join(out) + text[pos:]


def _mask_option(m: re.Match[str]) -> str:
    name, value = m.group("name"), m.group("value")
    if not is_secret_name(name) or value.startswith("-"):
        return m.group(0)
    return f"{name}{m.group('sep')}{MASK}"


def redact_text(text: str) -> str:
    """``text`` with URL passwords and secret-named values replaced by ``***``."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(_mask_url, text)
    text = _mask_assignments(text)
    return _OPTION.sub(_mask_option, text)


def redact_argv(argv: Iterable[str]) -> list[str]:
    """A command line (one item per argument) with its secrets replaced by ``***``.

    ``--token X`` hides the next item; ``--token=X`` and ``NAME=X`` keep the name; every
    other item is passed through :func:`redact_text` (URL passwords, embedded ``NAME=X``).
    """
    out: list[str] = []
    hide_next = False
    for arg in map(str, argv):
        if hide_next:  # the value of --token, even if it looks like an option
            hide_next = False
            out.append(MASK)
            continue
        name, eq, _ = arg.partition("=")
        if eq and re.fullmatch(r"-{0,2}[A-Za-z_][\w.\-]*", name) and is_secret_name(name):
            out.append(f"{name}={MASK}")
        elif not eq and arg.startswith("-") and is_secret_name(arg):
            out.append(arg)
            hide_next = True
        else:
            out.append(redact_text(arg))
    return out

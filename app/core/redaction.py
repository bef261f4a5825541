"""Hiding the secrets a URL may carry, wherever a URL is shown or logged.

A model's base URL may hold credentials: ``https://user:password@host/v1`` or a query such as
``?api-key=…``. Shown to members (``GET /api/agents/``), to admins, or written to a log, the
userinfo becomes ``***@`` and the value of every query parameter whose name looks like a secret
becomes ``***``; the rest of the URL is left as it was, so that it still says where it points.
"""

import re

REDACTED = "***"
# Parts of query parameter names that say the value is a secret (case-insensitive):
# key, api_key, apikey, api-key, token, access_token, secret, password, passwd, pwd, sig,
# signature, auth, credential, session.
_SECRET_NAME = re.compile(r"key|token|secret|pass|pwd|sig|auth|cred|session", re.IGNORECASE)
# A URL inside free text (a log line, an exception message): a scheme, "://", then anything
# up to whitespace or a quote/bracket that usually ends it.
_URL_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>`\\]+""")


def _redacted_query(query: str) -> str:
    parts = []
    for pair in query.split("&"):
        name, sep, _ = pair.partition("=")
        parts.append(f"{name}={REDACTED}" if sep and _SECRET_NAME.search(name) else pair)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``url`` without the secrets it may carry (userinfo, secret query values).

    Parsed by hand rather than with urllib: a password typed without percent-encoding (one
    holding ``/`` or ``#``) must be hidden all the same, and nothing here may raise."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    head, tail = rest[:cut], rest[cut:]
    if separator and "@" in head:
        # Everything up to the last "@" before the query is userinfo, even an unencoded "/".
        head = REDACTED + head[head.rfind("@") :]
    if tail.startswith("?"):
        query, hash_mark, fragment = tail[1:].partition("#")
        tail = f"?{_redacted_query(query)}{hash_mark}{fragment}"
    return f"{scheme}{separator}{head}{tail}"


def redact_urls_in(text: str) -> str:
    """``text`` with every URL in it redacted (``redact_url``)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)

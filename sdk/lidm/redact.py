"""Credentials out of anything shown: every database or source URL the gateway prints or logs goes through here."""

from __future__ import annotations

import re
from urllib.parse import quote_plus, unquote_plus

MASK = "***"

# ODBC connection-string keys whose value is a credential; a value may be braced, with }} for a literal }
_ODBC_SECRET = re.compile(r"(?i)\b(pwd|password)(\s*=\s*)(\{(?:[^}]|\}\})*\}|[^;]*)")
# query parameters that carry a credential (a key *file* path, key_file=, is not one and stays visible)
_SECRET_PARAM = re.compile(
    r"(?i)^(password|passwd|pwd|pass|passphrase|secret|token|access_token|api_?key|sslpassword|"
    r"\w*_(password|secret|token))$"
)
_QUERY_PAIR = re.compile(r"([?&;])([^=&#;]+)=([^&#]*)")
_USERINFO = re.compile(r"^([\w+.-]+://[^/?#@:]*):[^/?#]*@")
_RAW_USERINFO = re.compile(r"^([\w+.-]+://[^/?#@:]*):[^/@]*[?#][^/@]*@")


def _odbc(text: str) -> str:
    return _ODBC_SECRET.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)


def _param(match: re.Match[str]) -> str:
    sep, name, value = match[1], match[2], match[3]
    if _SECRET_PARAM.match(unquote_plus(name)):
        return f"{sep}{name}={MASK}"
    decoded = unquote_plus(value)
    scrubbed = _odbc(decoded)  # odbc_connect=DRIVER=...;PWD=...; inside a SQLAlchemy URL
    return f"{sep}{name}={value if scrubbed == decoded else quote_plus(scrubbed, safe='*')}"


def redact_url(url: str) -> str:
    """The URL or connection string with every password, secret query parameter and ODBC PWD= replaced by ***."""
    text = str(url)
    if "://" not in text:
        return _odbc(text)  # a bare ODBC string or a file path
    # a password with an unencoded ? or # would otherwise be split off below and shown
    text = _RAW_USERINFO.sub(rf"\1:{MASK}@", text, count=1)
    base, hashmark, fragment = text.partition("#")  # a #schema.table suffix is no credential
    base, mark, query = base.partition("?")  # the query is scrubbed here, as written (SQLAlchemy reorders it)
    try:
        from sqlalchemy.engine import make_url

        base = make_url(base).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses (bad port, …): fall back to the userinfo pattern
        base = _USERINFO.sub(rf"\1:{MASK}@", base)
    query = _QUERY_PAIR.sub(_param, mark + query)
    return _odbc(base + query) + hashmark + fragment

"""Who may talk to the studio: this machine only, or whoever holds the token printed at start.

Every request must name a host the studio serves (a page elsewhere cannot reach it through a
rebound DNS name); off this machine every request must carry the token (query, header or the
cookie the first page sets); every writing request must come from the studio's own page (its
Origin is the studio's address).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.datastructures import Headers, QueryParams
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TOKEN_COOKIE = "wan_lora_studio_token"
TOKEN_HEADER = "x-studio-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_local(host: str) -> bool:
    return host in LOCAL_HOSTS


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Access:
    """What the studio accepts: `hosts` it answers as, and a `token` (None: local only)."""

    hosts: frozenset[str]
    token: str | None = field(default=None, repr=False)

    @classmethod
    def for_bind(cls, host: str, token: str | None) -> Access:
        """Bound to this machine no token is needed; bound elsewhere one is required, and then
        the studio answers as whatever name the network gives it."""
        if is_local(host):
            return cls(LOCAL_HOSTS, token)
        if not token:
            raise ValueError(f"the studio bound to {host} needs a token")
        return cls(frozenset({"*"}), token)


class AccessGuard:
    """ASGI middleware refusing what `Access` does not allow, before any route runs."""

    def __init__(self, app: ASGIApp, access: Access):
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal:
            await PlainTextResponse(refusal, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, self._setting_cookie(scope, send))

    def refusal(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        host = _hostname(headers.get("host", ""))
        if host not in self.access.hosts and "*" not in self.access.hosts:
            return f"this studio does not answer as {host!r}"
        if self.access.token and not hmac.compare_digest(
            _token_of(scope, headers).encode(), self.access.token.encode()
        ):
            return "this studio needs its token (printed by `wan-lora ui` at start)"
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin", "")
            if urlsplit(origin).netloc != headers.get("host"):
                return f"a write from another page ({origin or 'no origin'}) is refused"
        return None

    def _setting_cookie(self, scope: Scope, send: Send) -> Send:
        """The token in a page's address goes into a cookie: the page's videos, pictures and
        requests then carry it too."""
        token = QueryParams(scope.get("query_string", b"")).get("token")
        if not self.access.token or not token:
            return send

        async def send_with_cookie(message) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
                message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
            await send(message)

        return send_with_cookie


def _hostname(host_header: str) -> str:
    return urlsplit(f"//{host_header}").hostname or ""


def _token_of(scope: Scope, headers: Headers) -> str:
    query = QueryParams(scope.get("query_string", b"")).get("token")
    if query:
        return query
    if headers.get(TOKEN_HEADER):
        return headers[TOKEN_HEADER]
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == TOKEN_COOKIE:
            return value
    return ""

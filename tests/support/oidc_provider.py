"""An OpenID provider double on loopback: discovery, JWKS, authorize, token and userinfo, served
by uvicorn in the test's event loop, signing ID tokens with joserfc (RS256).

It signs in whoever the test puts in `provider.user` (claims) without a login page: authorize
answers at once with a redirect to Parley's callback carrying a code. A test bends it to show
Parley a failure: `token_claims` overrides claims of the next ID tokens (a wrong `aud`, an `exp`
in the past, another `nonce`), `authorize_error` answers with an OAuth error, `rotate_key()`
signs with a new key (the old one leaves the JWKS), `sign_with_unpublished_key` signs with a key
the JWKS never shows.
"""

import asyncio
import base64
import contextlib
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.wait import wait_until

CLIENT_ID = "parley-test-client"
CLIENT_SECRET = "parley-test-client-secret-0123456789"


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8)}, private=True)


@dataclass
class _Grant:
    claims: dict[str, Any]
    nonce: str | None
    redirect_uri: str
    code_challenge: str


@dataclass
class OidcProvider:
    issuer: str = ""
    # The person who signs in next (their claims: sub, email, email_verified, name, groups...).
    user: dict[str, Any] = field(default_factory=dict)
    # Claims that override the next ID tokens' (to forge a failure).
    token_claims: dict[str, Any] = field(default_factory=dict)
    # Claims only the userinfo endpoint gives (none in the ID token).
    userinfo_only: dict[str, Any] = field(default_factory=dict)
    authorize_error: str | None = None
    sign_with_unpublished_key: bool = False
    key: RSAKey = field(default_factory=_new_key)
    # How many times the JWKS was read (key rotation makes Parley read it again, once).
    jwks_reads: int = 0
    # Each authorization request's parameters, as Parley sent them.
    authorizations: list[dict[str, str]] = field(default_factory=list)
    _grants: dict[str, _Grant] = field(default_factory=dict)
    _access: dict[str, dict[str, Any]] = field(default_factory=dict)

    def rotate_key(self) -> None:
        """A new signing key; the old one is no longer published."""
        self.key = _new_key()

    # The endpoints.

    async def discovery(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def jwks(self, _request: Request) -> Response:
        self.jwks_reads += 1
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.authorizations.append(params)
        redirect_uri = params["redirect_uri"]
        assert params["client_id"] == CLIENT_ID
        assert params["response_type"] == "code"
        assert params["code_challenge_method"] == "S256"
        if self.authorize_error is not None:
            query = {"error": self.authorize_error, "state": params.get("state", "")}
            return RedirectResponse(f"{redirect_uri}?{urlencode(query)}", status_code=302)
        code = secrets.token_urlsafe(16)
        self._grants[code] = _Grant(
            claims=dict(self.user),
            nonce=params.get("nonce"),
            redirect_uri=redirect_uri,
            code_challenge=params["code_challenge"],
        )
        query = {"code": code, "state": params["state"]}
        return RedirectResponse(f"{redirect_uri}?{urlencode(query)}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = await request.form()
        basic = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if basic != f"Basic {expected}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self._grants.pop(str(form.get("code")), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if form.get("redirect_uri") != grant.redirect_uri:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = str(form.get("code_verifier") or "")
        if create_s256_code_challenge(verifier) != grant.code_challenge:
            return JSONResponse({"error": "invalid_grant", "why": "pkce"}, status_code=400)
        now = int(time.time())
        userinfo_only = set(self.userinfo_only)
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            **({"nonce": grant.nonce} if grant.nonce is not None else {}),
            **{k: v for k, v in grant.claims.items() if k not in userinfo_only},
            **self.token_claims,
        }
        key = _new_key() if self.sign_with_unpublished_key else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
        access_token = secrets.token_urlsafe(24)
        self._access[access_token] = {**grant.claims, **self.userinfo_only}
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            }
        )

    async def userinfo(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        claims = self._access.get(token)
        if claims is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(claims)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo),
            ]
        )


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def run_oidc_provider() -> AsyncIterator[OidcProvider]:
    """Serves a fresh provider on 127.0.0.1 (a free port) in the running event loop."""
    provider = OidcProvider()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    provider.issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(provider.app(), lifespan="off", access_log=False, log_config=None)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until(lambda: server.started or task.done())
        if task.done():
            task.result()
        yield provider
    finally:
        server.should_exit = True
        await task
        sock.close()


async def sso_sign_in(
    client: httpx.AsyncClient, provider: OidcProvider, *, next_path: str | None = None
) -> httpx.Response:
    """A browser's way through single sign-on: Parley's login redirect, the provider's
    authorize (which signs in `provider.user` at once), then Parley's callback with the state
    cookie. Returns the callback's answer (a redirect)."""
    params = {"next": next_path} if next_path else None
    start = await client.get("/api/auth/oidc/login", params=params)
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        at_provider = await browser.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    back = httpx.URL(at_provider.headers["location"])
    return await client.get(back.path, params=back.params)

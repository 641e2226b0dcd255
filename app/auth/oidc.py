"""The OpenID Connect relying party: Parley's side of the authorization code flow with PKCE.

Authlib builds the protocol messages (the authorization URL with its S256 code challenge, the
token request and its client authentication) and checks the ID token's claims (`CodeIDToken`:
iss, aud, exp, iat, nonce, azp, at_hash); joserfc checks its signature against the provider's
JWKS. The requests go through Parley's one shared httpx client.

The discovery document and the keys are cached per process. An ID token signed with a key id
the cached keys lack makes one fresh fetch of the JWKS (the provider rotated its keys); a key
still unknown after it fails the sign-in.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from app.core.config import Settings

logger = logging.getLogger("parley.security")

DISCOVERY_PATH = "/.well-known/openid-configuration"
# How long the discovery document and the keys are kept before they are read again.
CACHE_SECONDS = 3600
# Clock skew allowed between Parley and the provider when checking exp, iat and nbf.
LEEWAY_SECONDS = 60
TIMEOUT_SECONDS = 10.0
_MAX_DOCUMENT_BYTES = 1_000_000


class OidcFailure(Exception):
    """A sign-in with the provider failed; `code` is the message code the sign-in page shows."""

    def __init__(self, code: str, reason: str = "") -> None:
        super().__init__(f"{code}: {reason}" if reason else code)
        self.code = code
        self.reason = reason


# The message codes (the sign-in page's `sso_error`), a contract with frontends.
STATE_INVALID = "sso_state_invalid"  # forged, missing or expired state
PROVIDER_ERROR = "sso_provider_error"  # the provider answered with an error
PROVIDER_UNAVAILABLE = "sso_provider_unavailable"  # discovery, keys or token endpoint failed
# A bad signature, a malformed token, an unknown key.
TOKEN_INVALID = "sso_token_invalid"  # noqa: S105 - a message code
TOKEN_EXPIRED = "sso_token_expired"  # noqa: S105 - a message code
WRONG_AUDIENCE = "sso_wrong_audience"
WRONG_ISSUER = "sso_wrong_issuer"
WRONG_NONCE = "sso_wrong_nonce"
EMAIL_MISSING = "sso_email_missing"
EMAIL_UNVERIFIED = (
    "sso_email_unverified"  # an account has the email, the provider did not verify it
)
SIGNUP_DISABLED = "sso_signup_disabled"
ACCOUNT_DISABLED = "sso_account_disabled"
NOT_CONFIGURED = "sso_not_configured"


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    signing_algorithms: list[str]
    token_auth_method: str


@dataclass(frozen=True)
class TokenResponse:
    id_token: str
    access_token: str | None


class OidcClient:
    """One provider (OIDC_ISSUER) for one app instance."""

    def __init__(self, settings: Settings, http: Callable[[], httpx.AsyncClient]) -> None:
        """`http`: the app's shared client (a getter: the runtime may replace it)."""
        if not settings.oidc_enabled:
            raise ValueError("OIDC is not configured")
        assert settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self._client_secret = settings.oidc_client_secret.get_secret_value()
        self.scopes = settings.oidc_scopes
        self.redirect_uri = settings.public_base_url.rstrip("/") + "/api/auth/oidc/callback"
        self._http = http
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._keys: tuple[float, KeySet] | None = None
        self._lock = asyncio.Lock()

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = await self._http().get(
                url, headers={"Accept": "application/json"}, timeout=TIMEOUT_SECONDS
            )
        except httpx.HTTPError as exc:
            raise OidcFailure(PROVIDER_UNAVAILABLE, f"{what}: {exc.__class__.__name__}") from exc
        if response.status_code != 200 or len(response.content) > _MAX_DOCUMENT_BYTES:
            raise OidcFailure(PROVIDER_UNAVAILABLE, f"{what}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise OidcFailure(PROVIDER_UNAVAILABLE, f"{what}: not JSON") from exc
        if not isinstance(body, dict):
            raise OidcFailure(PROVIDER_UNAVAILABLE, f"{what}: not a JSON object")
        return body

    async def metadata(self) -> ProviderMetadata:
        """The provider's discovery document (cached for CACHE_SECONDS)."""
        cached = self._metadata
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        async with self._lock:
            cached = self._metadata
            if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
                return cached[1]
            document = await self._get_json(self.issuer.rstrip("/") + DISCOVERY_PATH, "discovery")
            metadata = self._read_metadata(document)
            self._metadata = (time.monotonic(), metadata)
            return metadata

    def _read_metadata(self, document: dict[str, Any]) -> ProviderMetadata:
        issuer = document.get("issuer")
        if not isinstance(issuer, str) or issuer.rstrip("/") != self.issuer.rstrip("/"):
            # OpenID Connect Discovery 1.0, section 4.3: the document must name the issuer it
            # was read from, or another server could pose as it.
            raise OidcFailure(PROVIDER_UNAVAILABLE, "discovery: issuer does not match")
        endpoints = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = document.get(name)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise OidcFailure(PROVIDER_UNAVAILABLE, f"discovery: no {name}")
            endpoints[name] = value
        userinfo = document.get("userinfo_endpoint")
        algorithms = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        # "none" never: an unsigned ID token proves nothing.
        algorithms = [a for a in algorithms if isinstance(a, str) and a.lower() != "none"]
        methods = document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        return ProviderMetadata(
            issuer=issuer,
            authorization_endpoint=endpoints["authorization_endpoint"],
            token_endpoint=endpoints["token_endpoint"],
            jwks_uri=endpoints["jwks_uri"],
            userinfo_endpoint=userinfo if isinstance(userinfo, str) else None,
            signing_algorithms=algorithms or ["RS256"],
            token_auth_method=method,
        )

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        cached = self._keys
        if not refresh and cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        metadata = await self.metadata()
        document = await self._get_json(metadata.jwks_uri, "jwks")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise OidcFailure(PROVIDER_UNAVAILABLE, "jwks: unreadable") from exc
        self._keys = (time.monotonic(), keys)
        return keys

    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        """Where the browser goes to sign in at the provider."""
        metadata = await self.metadata()
        url: str = prepare_grant_uri(
            metadata.authorization_endpoint,
            client_id=self.client_id,
            response_type="code",
            redirect_uri=self.redirect_uri,
            scope=self.scopes,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
        )
        return url

    async def exchange(self, code: str, code_verifier: str) -> TokenResponse:
        """Trades the authorization code (and the PKCE verifier) for tokens."""
        metadata = await self.metadata()
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=self.redirect_uri,
            code_verifier=code_verifier,
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        auth = ClientAuth(self.client_id, self._client_secret, metadata.token_auth_method)
        url, headers, body = auth.prepare("POST", metadata.token_endpoint, headers, body)
        try:
            response = await self._http().post(
                url, content=body, headers=headers, timeout=TIMEOUT_SECONDS
            )
        except httpx.HTTPError as exc:
            raise OidcFailure(PROVIDER_UNAVAILABLE, f"token: {exc.__class__.__name__}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise OidcFailure(PROVIDER_ERROR, f"token: HTTP {response.status_code} {error or ''}")
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise OidcFailure(TOKEN_INVALID, "token: no id_token")
        access_token = answer.get("access_token")
        return TokenResponse(
            id_token=id_token,
            access_token=access_token if isinstance(access_token, str) else None,
        )

    async def verify_id_token(
        self, token: TokenResponse, *, nonce: str, now: float | None = None
    ) -> dict[str, Any]:
        """The ID token's claims once its signature (JWKS), iss, aud, exp, iat and nonce are
        checked; OidcFailure with the reason's code otherwise."""
        metadata = await self.metadata()
        keys = await self._key_set()
        try:
            try:
                decoded = jwt.decode(token.id_token, keys, algorithms=metadata.signing_algorithms)
            except InvalidKeyIdError:
                # Signed with a key we do not have yet: the provider rotated. Fetch once more.
                keys = await self._key_set(refresh=True)
                decoded = jwt.decode(token.id_token, keys, algorithms=metadata.signing_algorithms)
        except JoseError as exc:
            raise OidcFailure(TOKEN_INVALID, f"id_token: {exc.error}") from exc
        except ValueError as exc:
            raise OidcFailure(TOKEN_INVALID, "id_token: malformed") from exc
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            options={
                "iss": {"essential": True, "value": metadata.issuer},
                "aud": {"essential": True, "value": self.client_id},
                "sub": {"essential": True},
            },
            params={
                "nonce": nonce,
                "client_id": self.client_id,
                "access_token": token.access_token,
            },
        )
        try:
            claims.validate(now=int(now if now is not None else time.time()), leeway=LEEWAY_SECONDS)
        except ExpiredTokenError as exc:
            raise OidcFailure(TOKEN_EXPIRED, "id_token: expired") from exc
        except ClaimError as exc:
            code = {"aud": WRONG_AUDIENCE, "iss": WRONG_ISSUER, "nonce": WRONG_NONCE}.get(
                exc.claim, TOKEN_INVALID
            )
            raise OidcFailure(code, f"id_token: {exc.error} {exc.claim}") from exc
        except JoseError as exc:
            raise OidcFailure(TOKEN_INVALID, f"id_token: {exc.error}") from exc
        subject = claims.get("sub")
        # OpenID Connect Core 2: at most 255 ASCII characters (the identity table's column).
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise OidcFailure(TOKEN_INVALID, "id_token: no usable subject")
        return dict(claims)

    async def userinfo(self, token: TokenResponse, subject: str) -> dict[str, Any]:
        """The userinfo endpoint's claims about `subject` ({} when there is no endpoint or no
        access token). A different subject is refused (OpenID Connect Core, 5.3.2)."""
        metadata = await self.metadata()
        if metadata.userinfo_endpoint is None or token.access_token is None:
            return {}
        try:
            response = await self._http().get(
                metadata.userinfo_endpoint,
                headers={"Authorization": f"Bearer {token.access_token}"},
                timeout=TIMEOUT_SECONDS,
            )
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            body = None
        if not isinstance(body, dict):
            logger.warning("oidc userinfo unreadable", extra={"event": "oidc_userinfo_failed"})
            return {}
        if body.get("sub") != subject:
            raise OidcFailure(TOKEN_INVALID, "userinfo: another subject")
        return body

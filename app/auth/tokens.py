"""Single-use, expiring tokens sent by mail (verify an email, reset a password)."""

from datetime import datetime, timedelta

from app.auth.errors import InvalidAccountToken
from app.auth.models import AccountToken, TokenPurpose
from app.auth.repository import AccountTokenRepository
from app.core.security import hash_token, new_opaque_token
from app.users.models import User

# Tokens are 43 characters; anything much longer is not one of ours.
MAX_TOKEN_LENGTH = 256


class AccountTokens:
    """Issues and checks mailed tokens: 256 random bits, only their SHA-256 stored."""

    def __init__(self, repository: AccountTokenRepository) -> None:
        self.repository = repository

    async def issue(
        self, user: User, purpose: TokenPurpose, *, email: str, ttl: timedelta, now: datetime
    ) -> str:
        """A new token for `email`; earlier unused tokens of the same purpose stop working."""
        await self.repository.retire_all(user.id, purpose, now)
        raw = new_opaque_token()
        await self.repository.add(
            AccountToken(
                user_id=user.id,
                purpose=purpose,
                token_hash=hash_token(raw),
                email=email,
                created_at=now,
                expires_at=now + ttl,
            )
        )
        return raw

    async def find(self, raw: str, purpose: TokenPurpose, *, now: datetime) -> AccountToken:
        """The live token behind `raw`, without using it up (a weak new password can be retried)."""
        if not raw or len(raw) > MAX_TOKEN_LENGTH:
            raise InvalidAccountToken()
        token = await self.repository.get_by_hash(hash_token(raw), purpose)
        if token is None or token.used_at is not None or token.expires_at <= now:
            raise InvalidAccountToken()
        return token

    async def use(self, token: AccountToken, *, now: datetime) -> None:
        """Spends the token; a concurrent request that spent it first wins."""
        if not await self.repository.claim(token.id, now):
            raise InvalidAccountToken()

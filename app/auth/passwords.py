"""The password policy: length bounds, no reuse of the email, and a strength estimate (zxcvbn)."""

from anyio import to_thread
from zxcvbn import zxcvbn

from app.auth.errors import WeakPassword

MIN_LENGTH = 12
MAX_LENGTH = 128
# zxcvbn's cost grows with length; past this many characters the extra ones add only strength.
_ESTIMATE_PREFIX = 64


def _estimate(password: str, user_inputs: list[str]) -> tuple[int, str]:
    result = zxcvbn(password[:_ESTIMATE_PREFIX], user_inputs=user_inputs)
    feedback = result.get("feedback") or {}
    reason = feedback.get("warning") or " ".join(feedback.get("suggestions") or [])
    return int(result["score"]), reason


async def check_password_policy(
    password: str, *, email: str, display_name: str = "", min_score: int = 3
) -> None:
    """Raises WeakPassword with a reason a person can act on."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"Use at most {MAX_LENGTH} characters.")
    if password.strip().lower() == email.strip().lower():
        raise WeakPassword("The password must not be your email address.")
    local_part = email.split("@", 1)[0]
    score, reason = await to_thread.run_sync(
        _estimate, password, [email, local_part, display_name, "parley"]
    )
    if score < min_score:
        detail = reason or "Add more words or characters that are hard to guess."
        raise WeakPassword(f"This password is too easy to guess. {detail}".strip())

"""Every action the audit log records: the `action` of an event (a contract: filters and
exports rely on these names)."""

# Sign-in: outcome succeeded, failed or locked; details.method is password, mfa or oidc.
SIGN_IN = "auth.sign_in"
SIGN_OUT_EVERYWHERE = "auth.sign_out_everywhere"
SESSION_REVOKED = "auth.session_revoked"
PASSWORD_CHANGED = "auth.password_changed"  # noqa: S105 - an action name
PASSWORD_RESET = "auth.password_reset"  # noqa: S105 - an action name
EMAIL_CHANGED = "auth.email_changed"
EMAIL_VERIFIED = "auth.email_verified"
MFA_ENABLED = "auth.mfa_enabled"
MFA_DISABLED = "auth.mfa_disabled"
RECOVERY_CODE_USED = "auth.recovery_code_used"
# An identity provider's account linked to a Parley account (single sign-on).
IDENTITY_LINKED = "auth.identity_linked"

API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"

USER_CREATED = "user.created"
ROLE_CHANGED = "user.role_changed"
USER_DISABLED = "user.disabled"
USER_ENABLED = "user.enabled"
USER_DELETED = "user.deleted"

GROUP_CREATED = "group.created"
GROUP_CHANGED = "group.changed"
GROUP_DELETED = "group.deleted"
GROUP_MEMBERSHIP_CHANGED = "group.membership_changed"
MODEL_RESTRICTED = "model.restricted"
SHARE_LINK_CREATED = "share_link.created"
SHARE_LINK_REVOKED = "share_link.revoked"

MODERATION_READ = "moderation.read"

# Outcomes.
SUCCEEDED = "succeeded"
FAILED = "failed"
LOCKED = "locked"

# Actors that are not a user.
SYSTEM = "system"
ANONYMOUS = "anonymous"

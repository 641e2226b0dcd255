"""Accounts: the signed-in user's own profile, preferences, email change and deletion
(`/api/users/me`), and administrators managing other accounts (`/api/admin/users`).

Above auth (it needs the signed-in user, password checks and sessions) and users (the table).
"""

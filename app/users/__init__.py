"""Users: the user_account table (the User model) and its one repository. The bottom domain:
auth, accounts, usage and the chat domains use it; it uses only core."""

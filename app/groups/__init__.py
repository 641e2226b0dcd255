"""Groups of users: the restricted models their members may use, a daily token quota for each
member, group administrators who manage membership, and collections shared with them
(docs/groups.md)."""

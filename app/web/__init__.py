"""The reference web client: static ES modules and CSS served by Parley at `/` (docs/web.md)."""

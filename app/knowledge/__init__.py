"""Knowledge: collections of the user's documents, ingested in the background (extract, chunk,
embed) into an index in the app's own database, and retrieved for chats (see docs/knowledge.md)."""

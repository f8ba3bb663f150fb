"""Saved conversations: the JSON store, the autosaver and the Markdown export."""

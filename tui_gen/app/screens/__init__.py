"""Screens pushed over the chat: help, transcript browser, confirmation."""

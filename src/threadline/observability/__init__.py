"""Logging and metrics infrastructure shared by every layer: it imports nothing else of Threadline."""

"""Threadline: a self-hosted server for the OpenAI Assistants API (threads, messages, runs)."""

__version__ = "0.1.0"

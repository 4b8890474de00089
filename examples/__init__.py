"""Worked examples built on evsrc's public API."""

"""Maintainer command-line tools (never imported by a notebook kernel)."""

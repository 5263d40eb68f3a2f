"""Puts the repository root first on sys.path, so tests exercise this checkout rather than an installed copy."""

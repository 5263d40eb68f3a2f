"""Marks the repository root for pytest: a rootdir conftest.py makes pytest put this folder first on sys.path,
so the tests exercise this checkout rather than the copy installed in site-packages."""

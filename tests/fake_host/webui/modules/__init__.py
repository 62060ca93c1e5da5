"""Fake WebUI ``modules`` package (see tests/fake_host/__init__.py)."""

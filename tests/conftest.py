"""Shared by every test folder. Its presence also puts tests/ on sys.path, for tests/offline_aws.py."""

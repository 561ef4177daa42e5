"""Persistence: tables, repositories (never commit) and migrations."""

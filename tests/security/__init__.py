"""Tests of tenant isolation and the service's security (issue 11)."""

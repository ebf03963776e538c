"""Test infrastructure for Orchard's S3 code: helpers for the local S3 servers started by
scripts/s3-test-server (fixtures.py) and a fault-injecting reverse proxy (fault_proxy.py).
See docs/testing-s3.md."""

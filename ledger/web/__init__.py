"""``ledger web``: the read-only HTTP API and the auditor's pages (``create_app``)."""

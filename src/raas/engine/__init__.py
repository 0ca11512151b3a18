"""Settlement at scale: executors that turn a contract and the ledger into an invoice.

The reference executor streams the ledger through the pure core; compiled engines must agree
with it.
"""

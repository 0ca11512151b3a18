"""The offline auditor: checks what the ledger claims (proofs, checkpoints, invoices) without
trusting the party that produced them."""

"""Payments: a double-entry ledger with TigerBeetle's semantics, wallets, device payment tokens, pay codes at
the counter, payment intents, merchants, refunds, settlement and webhooks (issue: mobile payments)."""

"""The tiered gateway: an OpenAI-compatible proxy serving model calls from the cheapest tier
likely to succeed."""

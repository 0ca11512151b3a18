"""The tiered gateway: an OpenAI-compatible proxy that serves model calls from the cheapest tier likely to succeed."""

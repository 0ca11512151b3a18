"""The pure core: events, episodes, contracts, judge, rater, money and invoices. No I/O here."""

"""The dashboard: the pages vendors, buyers and auditors look at, rendered on the server from
the ledger and the episode tables, with every style and script shipped in the package."""

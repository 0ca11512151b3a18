"""The command line, `raas ...`: thin over the library."""

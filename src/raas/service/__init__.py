"""The service layer: HTTP API, authentication and tenancy, and the pages people look at."""

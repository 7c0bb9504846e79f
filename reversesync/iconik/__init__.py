"""Talking to Iconik: the client (client.py), its pacing (pacing.py), and what its failures mean (transport.py)."""

from .client import (
                     DEFAULT_URL,
                     ENV_APP_ID,
                     ENV_AUTH_TOKEN,
                     ENV_URL,
                     MAX_SEARCH_PER_PAGE,
                     READ_ROLES,
                     WRITE_ROLES,
                     IconikClient,
)
from .pacing import WINDOW_REQUESTS, WINDOW_SECONDS, Pacer, Stats, parse_retry_after
from .transport import checked_base_url, error_message, tls_cause

__all__ = ["DEFAULT_URL", "ENV_APP_ID", "ENV_AUTH_TOKEN", "ENV_URL", "MAX_SEARCH_PER_PAGE", "READ_ROLES",
           "WINDOW_REQUESTS", "WINDOW_SECONDS", "WRITE_ROLES", "IconikClient", "Pacer", "Stats", "checked_base_url",
           "error_message", "parse_retry_after", "tls_cause"]

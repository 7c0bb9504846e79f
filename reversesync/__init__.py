"""reversesync: put lost timecodes from a Google Sheet back into Iconik, exactly once."""

__version__ = "0.3.0"

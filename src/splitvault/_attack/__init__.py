"""The attack suite behind ``splitvault attack`` and ``pytest -m security``."""

"""The manager: owns the store (its only writer), serves the API, ages old records."""

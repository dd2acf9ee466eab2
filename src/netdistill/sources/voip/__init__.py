"""VoIP call detail record formats."""

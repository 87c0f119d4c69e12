"""Report formats: text for people, JSON for scripts (DESIGN §6)."""

"""Memory-augmented task planning: plans are validated data (skill calls), never executed text."""

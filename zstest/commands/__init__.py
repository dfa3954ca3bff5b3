"""CLI command groups, one module per stage; each exports COMMANDS."""

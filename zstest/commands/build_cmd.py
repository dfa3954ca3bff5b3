"""Placeholder: commands of this stage are registered here."""

COMMANDS = []

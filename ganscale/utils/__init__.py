"""Helpers every layer may use (they import nothing from ganscale above them)."""

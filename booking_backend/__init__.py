"""Vaccination booking backend: first and second dose booked together, never oversold."""

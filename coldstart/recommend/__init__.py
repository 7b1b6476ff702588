"""Onboarding recommendations in three layers: candidates -> ranking -> business rules."""

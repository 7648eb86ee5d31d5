"""Evaluation: prediction quality of world models (more evaluators arrive with planning)."""

"""Trained models: the store that writes and safely loads them, and the bundled default model."""

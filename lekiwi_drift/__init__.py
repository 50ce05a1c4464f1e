"""lekiwi-drift: LeKiwi teleop demos -> one-step Drift-VLA policy -> honest trials."""

__version__ = "0.1.0"

"""Recording demonstrations as a LeRobotDataset (v3), crash-safe per episode (recorder.py)."""

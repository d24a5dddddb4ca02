"""The papers' protocols as runnable experiments (the demo is the main job on the built-in data)."""

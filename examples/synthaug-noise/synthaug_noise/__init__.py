"""Example third-party synthaug plugin."""

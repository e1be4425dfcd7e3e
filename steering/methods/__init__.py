"""The one registry of vector methods and its families: statistics, learned, heads."""

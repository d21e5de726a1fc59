"""Normalise real scene graphs before chains are drawn: names, duplicates, typed attributes, canonical answers."""

"""The studio: the hand work of a LoRA in a web page served beside Dagster's UI.

Captions beside their playing clips, on the same project files the command line and the graph
use: a save is the hand edit an editor would make, and an update is the command line's run.
"""

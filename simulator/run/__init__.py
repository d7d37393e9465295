"""In-process runs: the worker's parts and scripted customers on one event loop, resumable
from the store."""

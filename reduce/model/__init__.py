"""The bottom layer: the frame (Image, Sources), quality flags, errors and exit statuses.

Imports nothing of reduce; every other package may import it."""

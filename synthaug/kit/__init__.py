"""Helpers any plugin may use (and the core's pipeline uses): atomic files and JSON, progress bars,
x-ray physics, ImageNet transfer, volume resampling, once-per-round sampling, device resolution and
the one ``XxYxZ`` size parser. Each module imports torch only inside the functions that need it."""

"""A run's report as one self-contained HTML page, and headless Chromium to render it."""

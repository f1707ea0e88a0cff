"""Kiln's front ends: the Textual app and the command line.

Importing this package stays cheap: Textual is imported only by the app itself, so the
headless commands (``kiln run``, ``kiln show``, ...) load ``core`` alone.
"""

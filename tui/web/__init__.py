"""The app in a browser: ``kiln serve``'s locked-down textual-serve server."""

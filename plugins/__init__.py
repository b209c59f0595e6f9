"""Built-in diffim plugins: registered through the ``diffim`` entry-point group like any third-party plugin."""

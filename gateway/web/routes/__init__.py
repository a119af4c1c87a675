"""The routes, one module per family of paths; web/app.py lists them."""

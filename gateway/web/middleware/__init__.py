"""The pipeline's stages, one module each; web/app.py lists them in request order."""

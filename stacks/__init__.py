"""The AWS side as code: one CDK stack per concern, composed in ``app.py``."""

from .smelu import SmeLU, smelu  # noqa: F401

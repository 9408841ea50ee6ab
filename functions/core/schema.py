"""The base of every pydantic model in functions/: its validation schema is built on first use, not at import.

A function's cold start imports every model its routes might need (the api function: three dialects,
accounts, uploads, webhooks), but one request validates only a few of them. Deferring the build keeps the
rest off the cold start; each model is built once, on its first validation or serialization, then kept.
"""

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    # Subclasses' own model_config merges with this one (pydantic merges configs along the bases).
    model_config = ConfigDict(defer_build=True)

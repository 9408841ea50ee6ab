"""The base of every pydantic model in functions/: its validation schema is built on first use, not at import.

A function's cold start imports every model its routes might need (the api function: three dialects,
accounts, uploads, webhooks), but one request validates only a few of them. Deferring the build keeps the
rest off the cold start; each model is built once, on its first validation or serialization, then kept.
"""

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    # Subclasses' own model_config merges with this one (pydantic merges configs along the bases).
    model_config = ConfigDict(defer_build=True)


# The longest string a request field takes unless the field says otherwise (prompts do): URLs, ids, names. A
# string without a bound once filled a job record past DynamoDB's 400 KB item limit (a 500 on every dialect).
MAX_STRING_CHARS = 2048


class Request(Schema):
    """The base of every request body and form: each string field is bounded (MAX_STRING_CHARS unless it says
    otherwise), so nothing a caller sends can grow a record without limit."""

    model_config = ConfigDict(str_max_length=MAX_STRING_CHARS)

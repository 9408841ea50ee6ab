"""The GPU side: the runtime-agnostic worker, pipeline loading, tiny local pipelines and the Modal app.

It builds on functions/core (the job store, messages, storage and the model catalog); nothing under
functions/ imports from here. Import-light on purpose: torch and diffusers load on first use.
"""

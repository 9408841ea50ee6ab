"""The GPU side: model catalog, runtime-agnostic worker, tiny local pipelines and the Modal app.

Import-light on purpose: the api Lambda imports gpu.catalog, which must not pull in torch.
"""

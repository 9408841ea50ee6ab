"""`darkroom deploy`, `destroy` and `status`: from a clone to a working URL and an admin key.

One module per concern: `preflight` (what is missing and how to fix it), `plan` (the ordered steps, shown
masked by --dry-run, run in order otherwise), `tools` (finding and running sam and modal), `stack` (a
deployed stack's parameters, outputs and tables), `modal_token` (the token, read from the modal package's
own configuration and written into the stack's secret), `bootstrap` (the first workspace and admin key,
and .darkroom/deploy.env) and `status`.
"""

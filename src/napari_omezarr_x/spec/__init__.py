"""What OME-NGFF says: lenient parsing of every version's metadata (0.1 to 0.6-dev),
coordinate transformations, the official JSON schemas and store validation.

`metadata`, `transforms` and `raw` (what raw documents declare, for the validator)
are pure functions of JSON (no I/O); `validate` walks
a store through `storage`, and `chunks` (its data check) decodes every chunk of the
arrays it names. May import `storage`, `model` and `errors` only.
"""

"""orch8's REST API (aiohttp), wire-compatible with Orch8's.

Every resource module (`sequences`, `instances`, `instance_ops`, `signals`,
`stream`, `workers`, `cron`, `rate_limits`, `health` and `meta`) follows one pattern,
so a route reads the same wherever it lives:

Handlers are straight-line code: decode, call one use case, encode.
- The body is decoded by one codec call, `x_from_json(await read_json(request))`
  (`body.read_json` guarantees sane JSON; the `orch8.codec` function checks the
  shape and raises a ValidationError naming the field). A handler never looks
  inside raw JSON itself.
- The query string goes through `params`; the path id is `request.match_info`;
  the tenant is `deps.caller_of(request)`, passed to the use case as `caller`.
- The use case comes from `deps.deps_of(request)` (`ApiDeps`, built from the
  composition root's `UseCases`: every use case is always there).
- Domain objects are encoded by the codec (`x_to_json`); small envelopes such
  as `{"id"}`, `{"count"}` or an `{"items", "has_more"}` page are written inline.

Errors are never caught in a handler. Use cases raise application and domain
errors, and `errors.error_middleware` maps each to its status through one table
(`errors.STATUS_OF`), always as `{"error": "..."}`. The exceptions are
deliberate: the readiness probe turns any failure into 503, and a stream can
only report a failure inside the stream once its headers are sent.

Each module ends with `ROUTES` (method, path, handler, mounted by `app.py`) and
`OPENAPI_PATHS`, the same paths described with the builders of `openapi_ops`
(`op(...)`, responses from `returns`/`errors`/`no_content`, parameters and
request bodies by component name or inline). Shapes a module's paths refer to
by name are its `OPENAPI_SCHEMAS`; `openapi.py` adds the shared components
(the error shape, common query parameters, error responses) and assembles the
document, and a test checks it against the router.
"""

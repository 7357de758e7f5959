"""The parts of the pure parser; its public API is ``edge.parser``.

- ``errors``: ParseError (with its DLQ reason) and ParseResult;
- ``decode``: bytes -> JSON document (the gateway's raw control characters too);
- ``names``: names as InfluxDB stores them (escaping, and the renamings line
  protocol forces);
- ``times``: ``header.timestamp`` in the site's zone, daylight-saving included;
- ``fields``: field sets (one orjson call on the common path);
- ``points``: the document walk that turns service elements into points.

``metrics`` holds the Prometheus counters for what the parser reports; the stage
imports it, the parser never does (the parser imports no client).
"""

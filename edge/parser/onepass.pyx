# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The parser's compiled hot path: one pass from the document's bytes to lines. Pure.

For the common gateway document (``header`` and ``FieldDeviceLayer`` objects,
service elements of numbers, booleans, strings, nulls and objects of scalars) the
lines are made straight from the bytes, with no Python object per value, byte for
byte as ``edge.parser.parse_pure`` makes them. Anything else returns the reason as
a string (:data:`REASONS`) and the caller runs the pure parser, which stays the
reference: lists, objects inside objects, backslash escapes or control characters
in a name, numbers it does not format (NaN, overflow, integers beyond 15 digits,
exponents where orjson and ``repr`` differ), duplicate keys or series, anything the
pure parser would name in ``problems`` or refuse with ``ParseError``.

The rules it repeats from the pure parser (``points.py``, ``fields.py``,
``edge/core/lineproto.py``) are stated where they are applied; ``tests/test_parser_onepass.py``
holds the two to the same output over generated documents.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint32_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, strlen

from datetime import timezone

_UTC = timezone.utc

from edge.parser.errors import ParseError, ParseResult
from edge.parser.times import EARLIER_OCCURRENCE, RESOLVED_BY_HINT, timestamp_ns

cdef extern from "Python.h":
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception) except? -1.0
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int* ptype) except NULL
    void PyMem_Free(void* p)
    int Py_DTSF_ADD_DOT_0

cdef extern from "math.h":
    bint isfinite(double x)

ctypedef unsigned char uchar

# ---------------------------------------------------------------- fallback reasons

cdef enum:
    R_INPUT = 1       # not bytes, empty, a byte-order mark
    R_SYNTAX = 2      # what this scanner does not accept as JSON (NaN literals, bad UTF-8, ...)
    R_SHAPE = 3       # not the common shape (header, FieldDeviceLayer, service elements)
    R_LIST = 4        # a list inside a service element
    R_DEEP = 5        # an object inside an object of a service element, or very deep nesting
    R_ESCAPE = 6      # a backslash escape in a key or name
    R_NAME = 7        # a control character, empty name, id text the pure parser must judge
    R_NUMBER = 8      # a number this path does not format
    R_DUP_KEY = 9     # a key twice in one object
    R_DUP_SERIES = 10 # two points of one series: the pure parser names it
    R_TIME = 11       # a timestamp the pure parser refuses
    R_SITE = 12       # a site_id the pure parser refuses
    R_NO_POINTS = 13  # no point at all: the pure parser raises
    R_LARGE = 14      # more keys in one element than this path keeps
    R_BUSY = 15       # called again while running (a finalizer during a parse)

REASONS = ("ok", "input", "syntax", "shape", "list", "deep_object", "escape", "name", "number",
           "duplicate_key", "duplicate_series", "time", "site", "no_points", "large_object", "reentrant")

cdef enum:
    K_INT = 1
    K_FLOAT = 2
    K_TRUE = 3
    K_FALSE = 4
    K_NULL = 5
    K_STR = 6
    K_OBJ = 7

cdef enum:
    S_ESCAPE = 1      # a string with a backslash escape
    S_CONTROL = 2     # a string with a raw control character
    S_NONASCII = 4

cdef enum:
    MAX_ENTRIES = 1024
    SLOTS = 2048          # per key table; a power of two, twice the keys it takes
    MAX_SKIP_DEPTH = 128
    MIN_BUF = 65536

cdef struct Entry:
    const uchar* key
    Py_ssize_t klen
    const uchar* val
    Py_ssize_t vlen
    Py_ssize_t child_end   # K_OBJ: index after its entries
    int kind
    int plain              # the key matches [A-Za-z0-9_.-]+ (fields.py's _PLAIN_KEY)
    int sflags             # K_STR: S_* flags

cdef struct Slot:
    uint32_t gen
    uint32_t hash
    Py_ssize_t idx

cdef struct KeySet:
    uint32_t gen
    Py_ssize_t n
    const uchar* keys[SLOTS]
    Py_ssize_t lens[SLOTS]
    Slot slots[SLOTS]

cdef struct Buf:
    char* data
    Py_ssize_t len
    Py_ssize_t cap

cdef struct Key:
    const uchar* ptr
    Py_ssize_t len
    uint32_t hash
    int plain

cdef struct Text:            # a name or id, unescaped: a span of the document or of ``own``
    const uchar* ptr
    Py_ssize_t len
    char own[24]

include "onepass_scan.pxi"
include "onepass_values.pxi"

# ---------------------------------------------------------------- the walk

cdef class _Walk:
    cdef const uchar* p
    cdef const uchar* end
    cdef int reason
    cdef list points
    cdef set seen
    cdef Py_ssize_t empty_points
    cdef object zones
    cdef object received_at_ns
    cdef int outcome
    cdef char suffix[32]
    cdef Py_ssize_t suffix_len
    cdef Text site
    cdef const uchar* base          # the FieldDeviceLayer key
    cdef Py_ssize_t base_len
    cdef const uchar* device        # the device's Name (escaped when written)
    cdef Py_ssize_t device_len
    cdef Text service               # the service element's id

    # ------------------------------------------------------------ top level

    cdef int document(self) except -1:
        cdef const uchar* p = skip_ws(self.p, self.end)
        cdef const uchar* end = self.end
        cdef const uchar* layer_at = NULL
        cdef bint have_header = False, have_layer = False
        cdef Key k
        cdef int r
        if p >= end or p[0] != 123:
            return R_SHAPE
        p = skip_ws(p + 1, end)
        if p < end and p[0] == 125:
            return R_SHAPE
        while True:
            p = read_key(p, end, &k, &self.reason)
            if p == NULL:
                return self.reason
            if key_is(&k, "header", 6):
                if have_header:
                    return R_DUP_KEY
                have_header = True
                self.p = p
                r = header(self)
                if r:
                    return r
                p = self.p
                if layer_at != NULL:  # FieldDeviceLayer came first: walk it now
                    self.p = layer_at
                    r = self.layer()
                    if r:
                        return r
            elif key_is(&k, "FieldDeviceLayer", 16):
                if have_layer:
                    return R_DUP_KEY
                have_layer = True
                if have_header:
                    self.p = p
                    r = self.layer()
                    if r:
                        return r
                    p = self.p
                else:
                    layer_at = p
                    p = skip_value(p, end, &self.reason)
                    if p == NULL:
                        return self.reason
            else:
                p = skip_value(p, end, &self.reason)
                if p == NULL:
                    return self.reason
            p = skip_ws(p, end)
            if p < end and p[0] == 44:
                p = skip_ws(p + 1, end)
                continue
            if p < end and p[0] == 125:
                break
            return R_SYNTAX
        if skip_ws(p + 1, end) != end:
            return R_SYNTAX
        if not (have_header and have_layer):
            return R_SHAPE
        if not self.points:
            return R_NO_POINTS
        return 0

    cdef int layer(self) except -1:
        cdef const uchar* p = self.p
        cdef const uchar* end = self.end
        cdef KeySet* keys = &KEYSETS[2]
        cdef Key k
        cdef int r
        if p >= end or p[0] != 123:
            return R_SHAPE
        keyset_clear(keys)
        p = skip_ws(p + 1, end)
        if p < end and p[0] == 125:
            self.p = p + 1
            return 0
        while True:
            p = read_key(p, end, &k, &self.reason)
            if p == NULL:
                return self.reason
            r = keyset_add(keys, &k)
            if r:
                return r
            if k.len == 0:
                return R_NAME  # no measurement name: the pure parser names it
            if p >= end or p[0] != 123:
                return R_SHAPE
            self.base, self.base_len = k.ptr, k.len
            self.p = p
            r = self.device_object()
            if r:
                return r
            p = skip_ws(self.p, end)
            if p < end and p[0] == 44:
                p = skip_ws(p + 1, end)
                continue
            if p < end and p[0] == 125:
                break
            return R_SYNTAX
        self.p = p + 1
        return 0

    cdef int device_object(self) except -1:
        """One ``fieldN``: its Name (the device tag) and its service elements."""
        cdef const uchar* p = skip_ws(self.p + 1, self.end)
        cdef const uchar* end = self.end
        cdef const uchar* service_at = NULL
        cdef bint have_name = False, have_service = False
        cdef int sflags, r
        cdef Key k
        self.device, self.device_len = NULL, 0
        if p < end and p[0] == 125:
            return R_SHAPE
        while True:
            p = read_key(p, end, &k, &self.reason)
            if p == NULL:
                return self.reason
            if key_is(&k, "Name", 4):
                if have_name:
                    return R_DUP_KEY
                have_name = True
                if p < end and p[0] == 34:
                    sflags = 0
                    self.device = p + 1
                    p = scan_string(p + 1, end, &sflags)
                    if p == NULL:
                        return R_SYNTAX
                    if sflags & S_ESCAPE:
                        return R_ESCAPE
                    if sflags & S_CONTROL:
                        return R_NAME
                    self.device_len = p - self.device
                    p += 1
                else:
                    p = skip_value(p, end, &self.reason)  # not a string: no device tag
                    if p == NULL:
                        return self.reason
            elif key_is(&k, "service", 7):
                if have_service:
                    return R_DUP_KEY
                have_service = True
                if have_name:
                    self.p = p
                    r = self.services()
                    if r:
                        return r
                    p = self.p
                else:
                    service_at = p
                    p = skip_value(p, end, &self.reason)
                    if p == NULL:
                        return self.reason
            else:
                p = skip_value(p, end, &self.reason)
                if p == NULL:
                    return self.reason
            p = skip_ws(p, end)
            if p < end and p[0] == 44:
                p = skip_ws(p + 1, end)
                continue
            if p < end and p[0] == 125:
                break
            return R_SYNTAX
        if not have_service:
            return R_SHAPE
        if service_at != NULL:  # the Name came after the service list
            self.p = service_at
            r = self.services()
            if r:
                return r
        self.p = p + 1
        return 0

    cdef int services(self) except -1:
        cdef const uchar* p = self.p
        cdef const uchar* end = self.end
        cdef Py_ssize_t position = 1
        cdef int r
        if p < end and p[0] == 123:  # a lone object: a list of one
            r = element(self, 1)
            return r
        if p >= end or p[0] != 91:
            return R_SHAPE
        p = skip_ws(p + 1, end)
        if p < end and p[0] == 93:
            self.p = p + 1
            return 0
        while True:
            if p >= end or p[0] != 123:
                return R_SHAPE
            self.p = p
            r = element(self, position)
            if r:
                return r
            position += 1
            p = skip_ws(self.p, end)
            if p < end and p[0] == 44:
                p = skip_ws(p + 1, end)
                continue
            if p < end and p[0] == 93:
                break
            return R_SYNTAX
        self.p = p + 1
        return 0


# The walk's other parts, as functions of it: the header (site tag, time suffix), and
# the points of a service element (its members, points of its own, the lines).
include "onepass_header.pxi"
include "onepass_points.pxi"

# ---------------------------------------------------------------- entry point

def parse(raw, zones, received_at_ns=None):
    """A ParseResult equal to the pure parser's, or the reason (a string of
    :data:`REASONS`) why the pure parser must run instead."""
    global BUSY
    cdef _Walk walk
    cdef int r
    if type(raw) is not bytes:
        return REASONS[R_INPUT]
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef const uchar* data = <const uchar*> PyBytes_AS_STRING(raw)
    if n == 0 or (n >= 3 and data[0] == 0xEF and data[1] == 0xBB and data[2] == 0xBF):
        return REASONS[R_INPUT]
    if BUSY:
        return REASONS[R_BUSY]
    BUSY = True
    try:
        walk = _Walk.__new__(_Walk)
        walk.p = data
        walk.end = data + n
        walk.points = []
        walk.seen = set()
        walk.zones = zones
        walk.received_at_ns = received_at_ns
        r = walk.document()
    finally:
        BUSY = False
    if r:
        return REASONS[r]
    result = ParseResult(points=walk.points)
    if walk.empty_points:
        result.empty_points = walk.empty_points
    if walk.outcome == RESOLVED_BY_HINT:
        result.ambiguous_times_resolved = 1
    elif walk.outcome == EARLIER_OCCURRENCE:
        result.ambiguous_times_unresolved = 1
    return result

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
``names.py``) are stated where they are applied; ``tests/test_parser_onepass.py``
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

cdef struct Text:            # a name or id, unescaped: a span of the document or of ``own``
    const uchar* ptr
    Py_ssize_t len
    char own[24]

# Byte classes.
cdef uchar PLAIN[256]        # [A-Za-z0-9_.-]
cdef uchar STR_STOP[256]     # ends a run of ordinary string bytes: " \ control, non-ASCII
cdef uchar ESC_MEASUREMENT[256]  # escaped with a backslash in a measurement: , space
cdef uchar ESC_TAG[256]          # in a tag key or value: , space =
cdef uchar ESC_FIELD[256]        # in a field key: , space = "


cdef void _init_tables():
    cdef int c
    for c in range(256):
        PLAIN[c] = (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c == 95 or c == 46 or c == 45
        STR_STOP[c] = c == 34 or c == 92 or c < 32 or c >= 128
        ESC_MEASUREMENT[c] = c == 44 or c == 32
        ESC_TAG[c] = c == 44 or c == 32 or c == 61
        ESC_FIELD[c] = c == 44 or c == 32 or c == 61 or c == 34


_init_tables()

cdef Entry ENTRIES[MAX_ENTRIES]
cdef KeySet KEYSETS[3]       # 0 a service element, 1 an object in it, 2 FieldDeviceLayer
cdef Buf OUT                 # the line being made
cdef Buf KEY                 # a child's index tag key, escaped
cdef bint BUSY = False

OUT.data = <char*> malloc(MIN_BUF)
OUT.cap = MIN_BUF if OUT.data != NULL else 0
KEY.data = <char*> malloc(256)
KEY.cap = 256 if KEY.data != NULL else 0
if OUT.data == NULL or KEY.data == NULL:
    raise MemoryError()


# ---------------------------------------------------------------- output buffers

cdef int grow(Buf* b, Py_ssize_t more) except -1:
    cdef Py_ssize_t cap = b.cap * 2
    while cap < b.len + more:
        cap *= 2
    cdef char* data = <char*> realloc(b.data, cap)
    if data == NULL:
        raise MemoryError()
    b.data = data
    b.cap = cap
    return 0


cdef inline int put(Buf* b, const void* s, Py_ssize_t n) except -1:
    if b.len + n > b.cap:
        grow(b, n)
    memcpy(b.data + b.len, s, n)
    b.len += n
    return 0


cdef inline int put_escaped(Buf* b, const uchar* s, Py_ssize_t n, const uchar* table) except -1:
    """``s`` with a backslash before each byte ``table`` marks (names.py rule 5)."""
    cdef Py_ssize_t i
    cdef uchar c
    if b.len + 2 * n > b.cap:
        grow(b, 2 * n)
    cdef char* out = b.data + b.len
    for i in range(n):
        c = s[i]
        if table[c]:
            out[0] = 92
            out += 1
        out[0] = c
        out += 1
    b.len = out - b.data
    return 0


cdef inline int bytes_cmp(const char* a, Py_ssize_t alen, const char* b, Py_ssize_t blen):
    cdef int r = memcmp(a, b, alen if alen < blen else blen)
    if r:
        return r
    return (alen > blen) - (alen < blen)


# ---------------------------------------------------------------- scanning

cdef inline const uchar* skip_ws(const uchar* p, const uchar* end):
    while p < end and (p[0] == 32 or p[0] == 10 or p[0] == 13 or p[0] == 9):
        p += 1
    return p


cdef inline int utf8_length(const uchar* p, const uchar* end):
    """Length of the valid UTF-8 sequence at ``p`` (a byte >= 0x80), 0 if invalid
    (as strict as Python's decoder and orjson: no overlongs, no surrogates)."""
    cdef uchar c = p[0]
    cdef uchar lo = 0x80
    cdef uchar hi = 0xBF
    cdef int n, i
    if 0xC2 <= c <= 0xDF:
        n = 2
    elif 0xE0 <= c <= 0xEF:
        n = 3
        if c == 0xE0:
            lo = 0xA0
        elif c == 0xED:
            hi = 0x9F
    elif 0xF0 <= c <= 0xF4:
        n = 4
        if c == 0xF0:
            lo = 0x90
        elif c == 0xF4:
            hi = 0x8F
    else:
        return 0
    if end - p < n:
        return 0
    if not (lo <= p[1] <= hi):
        return 0
    for i in range(2, n):
        if not (0x80 <= p[i] <= 0xBF):
            return 0
    return n


cdef inline int is_hex(uchar c):
    return (48 <= c <= 57) or (65 <= c <= 70) or (97 <= c <= 102)


cdef const uchar* scan_string(const uchar* p, const uchar* end, int* flags):
    """``p`` just after an opening quote; returns the closing quote, NULL if the
    string is not valid. Raw control characters are accepted: the pure decoder
    takes them (decode.py)."""
    cdef uchar c
    cdef int n
    while True:
        while p < end and not STR_STOP[p[0]]:
            p += 1
        if p >= end:
            return NULL
        c = p[0]
        if c == 34:
            return p
        if c == 92:
            flags[0] |= S_ESCAPE
            if p + 1 >= end:
                return NULL
            c = p[1]
            if c == 117:  # \uXXXX (a lone surrogate too: the lenient decoder takes it)
                if end - p < 6 or not (is_hex(p[2]) and is_hex(p[3]) and is_hex(p[4]) and is_hex(p[5])):
                    return NULL
                p += 6
            elif c == 34 or c == 92 or c == 47 or c == 98 or c == 102 or c == 110 or c == 114 or c == 116:
                p += 2
            else:
                return NULL
        elif c < 32:
            flags[0] |= S_CONTROL
            p += 1
        else:
            n = utf8_length(p, end)
            if n == 0:
                return NULL
            flags[0] |= S_NONASCII
            p += n


cdef const uchar* scan_number(const uchar* p, const uchar* end, int* kind):
    """JSON's number grammar; returns the byte after it, NULL if not a number."""
    if p < end and p[0] == 45:
        p += 1
    if p >= end:
        return NULL
    if p[0] == 48:
        p += 1
    elif 49 <= p[0] <= 57:
        while p < end and 48 <= p[0] <= 57:
            p += 1
    else:
        return NULL
    kind[0] = K_INT
    if p < end and p[0] == 46:
        p += 1
        if p >= end or not (48 <= p[0] <= 57):
            return NULL
        while p < end and 48 <= p[0] <= 57:
            p += 1
        kind[0] = K_FLOAT
    if p < end and (p[0] == 101 or p[0] == 69):
        p += 1
        if p < end and (p[0] == 43 or p[0] == 45):
            p += 1
        if p >= end or not (48 <= p[0] <= 57):
            return NULL
        while p < end and 48 <= p[0] <= 57:
            p += 1
        kind[0] = K_FLOAT
    return p


cdef const uchar* scan_scalar(const uchar* p, const uchar* end, int* kind, int* sflags):
    """A string, number, true, false or null at ``p``: the byte after it, or NULL."""
    cdef uchar c = p[0]
    if c == 34:
        p = scan_string(p + 1, end, sflags)
        kind[0] = K_STR
        if p == NULL:
            return NULL
        return p + 1
    if c == 45 or 48 <= c <= 57:
        return scan_number(p, end, kind)
    if c == 116 and end - p >= 4 and memcmp(p, b"true", 4) == 0:
        kind[0] = K_TRUE
        return p + 4
    if c == 102 and end - p >= 5 and memcmp(p, b"false", 5) == 0:
        kind[0] = K_FALSE
        return p + 5
    if c == 110 and end - p >= 4 and memcmp(p, b"null", 4) == 0:
        kind[0] = K_NULL
        return p + 4
    return NULL


cdef const uchar* skip_member_key(const uchar* p, const uchar* end):
    """A key and its colon in a skipped object; returns where its value starts."""
    cdef int flags = 0
    if p >= end or p[0] != 34:
        return NULL
    p = scan_string(p + 1, end, &flags)
    if p == NULL:
        return NULL
    p = skip_ws(p + 1, end)
    if p >= end or p[0] != 58:
        return NULL
    return skip_ws(p + 1, end)


cdef const uchar* skip_value(const uchar* p, const uchar* end, int* reason):
    """Validates and skips any JSON value at ``p`` (after whitespace)."""
    cdef uchar stack[MAX_SKIP_DEPTH]
    cdef int depth = 0
    cdef int kind, sflags
    cdef uchar c
    while True:
        p = skip_ws(p, end)
        if p >= end:
            reason[0] = R_SYNTAX
            return NULL
        c = p[0]
        if c == 123 or c == 91:  # { [
            p = skip_ws(p + 1, end)
            if p < end and p[0] == c + 2:
                p += 1
            else:
                if depth == MAX_SKIP_DEPTH:
                    reason[0] = R_DEEP
                    return NULL
                stack[depth] = c
                depth += 1
                if c == 123:
                    p = skip_member_key(p, end)
                    if p == NULL:
                        reason[0] = R_SYNTAX
                        return NULL
                continue
        else:
            sflags = 0
            p = scan_scalar(p, end, &kind, &sflags)
            if p == NULL:
                reason[0] = R_SYNTAX
                return NULL
        while True:  # after a value: commas and closing brackets
            if depth == 0:
                return p
            p = skip_ws(p, end)
            if p >= end:
                reason[0] = R_SYNTAX
                return NULL
            c = p[0]
            if c == 44:
                p = skip_ws(p + 1, end)
                if stack[depth - 1] == 123:
                    p = skip_member_key(p, end)
                    if p == NULL:
                        reason[0] = R_SYNTAX
                        return NULL
                break
            if c == stack[depth - 1] + 2:
                p += 1
                depth -= 1
            else:
                reason[0] = R_SYNTAX
                return NULL


# ---------------------------------------------------------------- keys

cdef struct Key:
    const uchar* ptr
    Py_ssize_t len
    uint32_t hash
    int plain


cdef const uchar* read_key(const uchar* p, const uchar* end, Key* k, int* reason):
    """A key of a structural object (one whose keys mean something) and its colon:
    no escapes (``"Na\\u006de"`` is ``Name``), no control characters."""
    cdef uint32_t h = 2166136261u
    cdef int plain = 1
    cdef int n, i
    cdef uchar c
    if p >= end or p[0] != 34:
        reason[0] = R_SYNTAX
        return NULL
    p += 1
    k.ptr = p
    while True:
        if p >= end:
            reason[0] = R_SYNTAX
            return NULL
        c = p[0]
        if c == 34:
            break
        if c == 92:
            reason[0] = R_ESCAPE
            return NULL
        if c < 32:
            reason[0] = R_NAME
            return NULL
        if c >= 128:
            n = utf8_length(p, end)
            if n == 0:
                reason[0] = R_SYNTAX
                return NULL
            for i in range(n):
                h = (h ^ p[i]) * 16777619u
            plain = 0
            p += n
            continue
        plain &= PLAIN[c]
        h = (h ^ c) * 16777619u
        p += 1
    k.len = p - k.ptr
    k.hash = h
    k.plain = plain and k.len > 0
    p = skip_ws(p + 1, end)
    if p >= end or p[0] != 58:
        reason[0] = R_SYNTAX
        return NULL
    return skip_ws(p + 1, end)


cdef inline void keyset_clear(KeySet* ks):
    cdef Py_ssize_t i
    ks.gen += 1
    ks.n = 0
    if ks.gen == 0:  # wrapped: stale stamps could match
        for i in range(SLOTS):
            ks.slots[i].gen = 0
        ks.gen = 1


cdef int keyset_add(KeySet* ks, Key* k):
    """0, or R_DUP_KEY when the key is already in the set (the decoders keep the
    last value at the first key's place: the pure parser must judge that)."""
    cdef uint32_t at = k.hash & (SLOTS - 1)
    cdef Slot* slot
    if ks.n >= SLOTS // 2:
        return R_LARGE
    while True:
        slot = &ks.slots[at]
        if slot.gen != ks.gen:
            slot.gen = ks.gen
            slot.hash = k.hash
            slot.idx = ks.n
            ks.keys[ks.n] = k.ptr
            ks.lens[ks.n] = k.len
            ks.n += 1
            return 0
        if slot.hash == k.hash and ks.lens[slot.idx] == k.len and memcmp(ks.keys[slot.idx], k.ptr, k.len) == 0:
            return R_DUP_KEY
        at = (at + 1) & (SLOTS - 1)


cdef inline bint key_is(Key* k, const char* word, Py_ssize_t n):
    return k.len == n and memcmp(k.ptr, word, n) == 0


cdef inline bint entry_is(Entry* e, const char* word, Py_ssize_t n):
    return e.klen == n and memcmp(e.key, word, n) == 0


# ---------------------------------------------------------------- numbers

cdef inline bint is_digit(uchar c):
    return 48 <= c <= 57


cdef bint canonical_float(const uchar* s, Py_ssize_t n):
    """True when ``repr(float(s))`` (and orjson's writing of it) is ``s`` itself:
    plain decimal notation, at most 15 significant digits (a decimal that short
    survives the trip through a double, so it is the shortest repr), no trailing
    zero but ``.0``, and in repr's fixed-notation range (1e-4 <= |x| < 1e16)."""
    cdef Py_ssize_t p = 0, int_start, int_len, frac_start, frac_len, zeros, digits
    if n and s[0] == 45:
        p = 1
    int_start = p
    while p < n and is_digit(s[p]):
        p += 1
    int_len = p - int_start
    if p >= n or s[p] != 46:
        return False
    frac_start = p + 1
    p = frac_start
    while p < n and is_digit(s[p]):
        p += 1
    if p != n:
        return False  # an exponent
    frac_len = n - frac_start
    if frac_len == 0 or (s[n - 1] == 48 and frac_len != 1):
        return False
    if int_len == 1 and s[int_start] == 48:
        zeros = 0
        while zeros < frac_len and s[frac_start + zeros] == 48:
            zeros += 1
        if zeros == frac_len:
            return True  # 0.0 / -0.0
        if zeros > 3:
            return False
        digits = frac_len - zeros
    elif frac_len == 1 and s[frac_start] == 48:
        digits = int_len
    else:
        digits = int_len + frac_len
    return digits <= 15 and int_len <= 15


cdef int put_number(Buf* b, Entry* e, bint as_float) except -1:
    """A reading as the pure parser writes it: orjson's formatting in the shortcut
    (``as_float`` false: an integer stays ``1``), ``repr(float(v))`` in FieldSet
    (``as_float``: ``1.0``). Returns R_NUMBER when this path cannot say."""
    cdef Py_ssize_t n = e.vlen
    cdef const uchar* s = e.val
    cdef char tmp[72]
    cdef double d
    cdef char* text
    cdef Py_ssize_t tn, i
    if e.kind == K_INT:
        if n - (s[0] == 45) > 15 or (n == 2 and s[0] == 45):  # beyond exact doubles; -0
            return R_NUMBER
        put(b, s, n)
        if as_float:
            put(b, b".0", 2)
        return 0
    if canonical_float(s, n):
        put(b, s, n)
        return 0
    if n > 64:
        return R_NUMBER
    memcpy(tmp, s, n)
    tmp[n] = 0
    d = PyOS_string_to_double(tmp, NULL, NULL)
    if not isfinite(d):
        return R_NUMBER  # dropped and named by the pure parser
    text = PyOS_double_to_string(d, 114, 0, Py_DTSF_ADD_DOT_0, NULL)
    tn = strlen(text)
    if not as_float:
        for i in range(tn):
            if text[i] == 101:  # orjson writes exponents its own way (1e-5, not 1e-05)
                PyMem_Free(text)
                return R_NUMBER
    try:
        put(b, text, tn)
    finally:
        PyMem_Free(text)
    return 0


cdef int identifier(Entry* e, Text* t, bint* found) except -1:
    """points.identifier(): ``found`` with the id's text in ``t`` (unescaped), or
    not found when the value names nothing (the position is used). Returns R_*
    when the pure parser must judge."""
    cdef Py_ssize_t n = e.vlen, i
    cdef const uchar* s = e.val
    cdef bint digits
    found[0] = False
    if e.kind == K_INT:
        if n - (s[0] == 45) > 15 or (n == 2 and s[0] == 45):
            return R_NUMBER
        t.ptr, t.len = s, n
        found[0] = True
    elif e.kind == K_FLOAT:
        if not canonical_float(s, n):
            return R_NUMBER
        i = 0
        while s[i] != 46:
            i += 1
        if not (i + 2 == n and s[i + 1] == 48):
            return 0  # not integral
        if (i == 1 and s[0] == 48) or (i == 2 and s[0] == 45 and s[1] == 48):
            t.ptr, t.len = <const uchar*> b"0", 1
        else:
            t.ptr, t.len = s, i
        found[0] = True
    elif e.kind == K_STR:
        if e.sflags & S_ESCAPE:
            return R_ESCAPE
        if e.sflags:  # control characters, non-ASCII (Unicode digits, spaces): the pure parser judges
            return R_NAME
        if n == 0:
            return 0
        if s[0] == 32 or s[n - 1] == 32:  # str.strip() judges
            return R_NAME
        digits = True
        for i in range(n):
            if not is_digit(s[i]):
                digits = False
                break
        if digits:  # "01" -> "1"
            i = 0
            while i < n - 1 and s[i] == 48:
                i += 1
            t.ptr, t.len = s + i, n - i
        else:
            t.ptr, t.len = s, n
        found[0] = True
    return 0


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
                r = self.header()
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

    cdef int header(self) except -1:
        """site_id and timestamp -> the site tag and the line's time suffix."""
        cdef const uchar* p = self.p
        cdef const uchar* end = self.end
        cdef Entry site, stamp
        cdef Entry* e
        cdef Key k
        cdef int r
        site.kind = 0
        stamp.kind = 0
        if p >= end or p[0] != 123:
            return R_SHAPE
        p = skip_ws(p + 1, end)
        if p < end and p[0] == 125:
            return R_SHAPE
        while True:
            p = read_key(p, end, &k, &self.reason)
            if p == NULL:
                return self.reason
            if key_is(&k, "site_id", 7) or key_is(&k, "timestamp", 9):
                e = &site if k.len == 7 else &stamp
                if e.kind:
                    return R_DUP_KEY
                if p >= end or p[0] == 123 or p[0] == 91:
                    return R_SITE if k.len == 7 else R_TIME
                e.sflags = 0
                e.val = p + 1 if p[0] == 34 else p
                p = scan_scalar(p, end, &e.kind, &e.sflags)
                if p == NULL:
                    return R_SYNTAX
                e.vlen = (p - 1 - e.val) if e.kind == K_STR else (p - e.val)
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
        self.p = p + 1
        if site.kind == 0:
            return R_SITE
        if stamp.kind != K_STR:
            return R_TIME
        r = self.site_tag(&site)
        if r:
            return r
        return self.time_suffix(&stamp)

    cdef int site_tag(self, Entry* e) except -1:
        """parse()'s _site_id and names.tag(site): a non-blank string, or an integer."""
        if e.kind == K_INT:
            if e.vlen - (e.val[0] == 45) > 15 or (e.vlen == 2 and e.val[0] == 45):
                return R_SITE
        elif e.kind == K_STR:
            if e.sflags & S_ESCAPE:
                return R_ESCAPE
            if e.sflags & S_CONTROL or blank(e.val, e.vlen):
                return R_SITE
        else:
            return R_SITE
        self.site.ptr, self.site.len = e.val, e.vlen
        return 0

    cdef int time_suffix(self, Entry* e) except -1:
        """times.timestamp_ns(): in C for a UTC ``YYYY-MM-DD HH:MM:SS``; any other
        zone or form through that function itself."""
        cdef const uchar* s = e.val
        cdef int64_t secs
        cdef object zone, site, ns
        if e.sflags:
            return R_TIME
        zones = self.zones
        if zones.sites:
            site = self.site_text()
            zone = zones.for_site(site)
        else:
            zone = zones.default
        if zone is _UTC and e.vlen == 19:
            secs = utc_seconds(s)
            if secs > 0:
                self.set_suffix(secs * 1000000000)
                return 0
        try:
            ns, self.outcome = timestamp_ns(PyBytes_FromStringAndSize(<const char*> s, e.vlen).decode(),
                                            zone, self.received_at_ns)
        except ParseError:
            return R_TIME
        self.set_suffix(ns)
        return 0

    cdef object site_text(self):
        """The site id as parse() looks its zone up: the string, or str(int)."""
        return PyBytes_FromStringAndSize(<const char*> self.site.ptr, self.site.len).decode()

    cdef void set_suffix(self, int64_t ns):
        cdef char digits[24]
        cdef int n = 0, i
        while ns:
            digits[n] = 48 + ns % 10
            ns //= 10
            n += 1
        self.suffix[0] = 32
        for i in range(n):
            self.suffix[1 + i] = digits[n - 1 - i]
        self.suffix_len = n + 1

    # ------------------------------------------------------------ FieldDeviceLayer

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
            r = self.element(1)
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
            r = self.element(position)
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

    # ------------------------------------------------------------ objects -> entries

    cdef int entries(self, int level, Py_ssize_t* count) except -1:
        """The members of the object at ``self.p`` appended to ENTRIES; an object
        value (level 0 only) is followed by its own members."""
        cdef const uchar* p = skip_ws(self.p + 1, self.end)
        cdef const uchar* end = self.end
        cdef KeySet* keys = &KEYSETS[level]
        cdef Entry* e
        cdef Key k
        cdef Py_ssize_t at
        cdef int r, kind, sflags
        cdef uchar c
        keyset_clear(keys)
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
            at = count[0]
            if at >= MAX_ENTRIES:
                return R_LARGE
            count[0] = at + 1
            e = &ENTRIES[at]
            e.key, e.klen, e.plain = k.ptr, k.len, k.plain
            if p >= end:
                return R_SYNTAX
            c = p[0]
            if c == 123:
                if level:
                    return R_DEEP
                e.kind = K_OBJ
                self.p = p
                r = self.entries(1, count)
                if r:
                    return r
                e.child_end = count[0]
                p = self.p
            elif c == 91:
                return R_LIST
            else:
                sflags = 0
                kind = 0
                e.val = p + 1 if c == 34 else p
                p = scan_scalar(p, end, &kind, &sflags)
                if p == NULL:
                    return R_SYNTAX
                e.kind, e.sflags = kind, sflags
                e.vlen = (p - 1 - e.val) if kind == K_STR else (p - e.val)
            p = skip_ws(p, end)
            if p < end and p[0] == 44:
                p = skip_ws(p + 1, end)
                continue
            if p < end and p[0] == 125:
                break
            return R_SYNTAX
        self.p = p + 1
        return 0

    # ------------------------------------------------------------ points

    cdef int element(self, Py_ssize_t position) except -1:
        """points.LayerWalk.device()/element(): a service element's objects are
        points of their own (written first), then the element's point."""
        cdef Py_ssize_t count = 0, i, id_at = -1, index_at = -1
        cdef int r
        cdef bint found
        r = self.entries(0, &count)
        if r:
            return r
        i = 0
        while i < count:
            if entry_is(&ENTRIES[i], "id", 2):
                id_at = i
            elif entry_is(&ENTRIES[i], "index", 5):
                index_at = i
            i = ENTRIES[i].child_end if ENTRIES[i].kind == K_OBJ else i + 1
        if id_at < 0:
            id_at = index_at
        found = False
        if id_at >= 0:
            r = identifier(&ENTRIES[id_at], &self.service, &found)
            if r:
                return r
        if not found:  # no usable id: the position, and the id stays a field
            id_at = -1
            self.service.len = position_text(position, &self.service)
        i = 0
        while i < count:
            if ENTRIES[i].kind == K_OBJ:
                r = self.child(i)
                if r:
                    return r
                i = ENTRIES[i].child_end
            else:
                i += 1
        OUT.len = 0
        self.put_measurement(NULL, 0)
        self.put_tags(NULL, 0, NULL)
        return self.emit(0, count, id_at)

    cdef int child(self, Py_ssize_t at) except -1:
        """points.LayerWalk.child(): measurement ``<fieldN>_<key>``, the element's
        tags plus ``<key>_index`` (the object's ``index``, else 1)."""
        cdef Entry* obj = &ENTRIES[at]
        cdef Py_ssize_t lo = at + 1, hi = obj.child_end, i, index_at = -1
        cdef Text own
        cdef int r
        cdef bint found
        for i in range(lo, hi):
            if entry_is(&ENTRIES[i], "index", 5):
                index_at = i
                break
        found = False
        if index_at >= 0:
            r = identifier(&ENTRIES[index_at], &own, &found)
            if r:
                return r
        if not found:
            index_at = -1
            own.len = position_text(1, &own)
        KEY.len = 0
        put_escaped(&KEY, obj.key, obj.klen, ESC_TAG)
        put(&KEY, b"_index", 6)
        OUT.len = 0
        self.put_measurement(obj.key, obj.klen)
        self.put_tags(KEY.data, KEY.len, &own)
        return self.emit(lo, hi, index_at)

    cdef int put_measurement(self, const uchar* path, Py_ssize_t path_len) except -1:
        """names.measurement(base) or names.measurement(f"{base}_{path}"): a leading
        ``#`` gets a backslash, commas and spaces are escaped."""
        if self.base[0] == 35:
            put(&OUT, b"\\", 1)
        put_escaped(&OUT, self.base, self.base_len, ESC_MEASUREMENT)
        if path != NULL:
            put(&OUT, b"_", 1)
            put_escaped(&OUT, path, path_len, ESC_MEASUREMENT)
        return 0

    cdef int put_tags(self, const char* index_key, Py_ssize_t index_key_len, Text* index) except -1:
        """The tags sorted by key as InfluxDB sorts them: device, service_id,
        site_id, and a child's ``<key>_index`` where bisect.bisect puts it."""
        cdef int before = -1  # how many of the other keys sort at or before the index key
        cdef int written = 0
        if index_key != NULL:
            before = 0
            if self.device_len and bytes_cmp(b"device", 6, index_key, index_key_len) <= 0:
                before += 1
            if bytes_cmp(b"service_id", 10, index_key, index_key_len) <= 0:
                before += 1
            if bytes_cmp(b"site_id", 7, index_key, index_key_len) <= 0:
                before += 1
        if before == written:
            self.put_index(index_key, index_key_len, index)
        if self.device_len:
            put(&OUT, b",device=", 8)
            put_escaped(&OUT, self.device, self.device_len, ESC_TAG)
            written += 1
            if before == written:
                self.put_index(index_key, index_key_len, index)
        put(&OUT, b",service_id=", 12)
        put_escaped(&OUT, self.service.ptr, self.service.len, ESC_TAG)
        written += 1
        if before == written:
            self.put_index(index_key, index_key_len, index)
        put(&OUT, b",site_id=", 9)
        put_escaped(&OUT, self.site.ptr, self.site.len, ESC_TAG)
        written += 1
        if before == written:
            self.put_index(index_key, index_key_len, index)
        return 0

    cdef int put_index(self, const char* key, Py_ssize_t key_len, Text* value) except -1:
        put(&OUT, b",", 1)
        put(&OUT, key, key_len)
        put(&OUT, b"=", 1)
        put_escaped(&OUT, value.ptr, value.len, ESC_TAG)
        return 0

    cdef int emit(self, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t skip) except -1:
        """The field set of the scalars in ENTRIES[lo:hi] (an object's members at
        its level) but ``skip`` (the id), and the line, after OUT's series key.

        fields.fast_field_set decides the format: when every key is plain (not
        ``time``, no ``null`` in it) orjson writes the numbers (``1``); otherwise
        FieldSet escapes the keys and writes ``repr(float(v))`` (``1.0``)."""
        cdef Py_ssize_t key_len = OUT.len, start, i
        cdef bint shortcut = True
        cdef Entry* e
        cdef int r
        cdef bytes key, line
        i = lo
        while i < hi:
            e = &ENTRIES[i]
            if e.kind == K_OBJ:
                i = e.child_end
                continue
            if e.kind <= K_FALSE and i != skip:
                if not e.plain or entry_is(e, "time", 4) or has_null(e.key, e.klen):
                    shortcut = False
                    break
            i += 1
        put(&OUT, b" ", 1)
        start = OUT.len
        i = lo
        while i < hi:
            e = &ENTRIES[i]
            if e.kind == K_OBJ:
                i = e.child_end
                continue
            if e.kind <= K_FALSE and i != skip:
                if e.klen == 0:
                    return R_NAME  # names.field_key("") is None: the pure parser names it
                if OUT.len != start:
                    put(&OUT, b",", 1)
                if shortcut:
                    put(&OUT, e.key, e.klen)
                else:
                    if entry_is(e, "time", 4):
                        put(&OUT, b"\\", 1)
                    put_escaped(&OUT, e.key, e.klen, ESC_FIELD)
                put(&OUT, b"=", 1)
                if e.kind == K_TRUE:
                    put(&OUT, b"true", 4)
                elif e.kind == K_FALSE:
                    put(&OUT, b"false", 5)
                else:
                    r = put_number(&OUT, e, not shortcut)
                    if r:
                        return r
            i += 1
        if OUT.len == start:
            self.empty_points += 1
            return 0
        put(&OUT, self.suffix, self.suffix_len)
        key = PyBytes_FromStringAndSize(OUT.data, key_len)
        if key in self.seen:
            return R_DUP_SERIES
        self.seen.add(key)
        line = PyBytes_FromStringAndSize(OUT.data, OUT.len)
        self.points.append((key, line))
        return 0


cdef bint blank(const uchar* s, Py_ssize_t n):
    """``not text.strip()`` for valid UTF-8 without control characters: only
    spaces and the code points Python calls whitespace."""
    cdef Py_ssize_t i = 0
    cdef uint32_t cp
    cdef int k
    while i < n:
        if s[i] < 128:
            if s[i] != 32:
                return False
            i += 1
            continue
        k = utf8_length(s + i, s + n)
        cp = s[i] & (0x7F >> k)
        for j in range(1, k):
            cp = (cp << 6) | (s[i + j] & 0x3F)
        if not (cp == 0x85 or cp == 0xA0 or cp == 0x1680 or 0x2000 <= cp <= 0x200A or cp == 0x2028
                or cp == 0x2029 or cp == 0x202F or cp == 0x205F or cp == 0x3000):
            return False
        i += k
    return True


cdef inline bint has_null(const uchar* s, Py_ssize_t n):
    cdef Py_ssize_t i
    for i in range(n - 3):
        if s[i] == 110 and s[i + 1] == 117 and s[i + 2] == 108 and s[i + 3] == 108:
            return True
    return False


cdef Py_ssize_t position_text(Py_ssize_t position, Text* t):
    cdef char digits[24]
    cdef int n = 0, i
    while True:
        digits[n] = 48 + position % 10
        position //= 10
        n += 1
        if not position:
            break
    for i in range(n):
        t.own[i] = digits[n - 1 - i]
    t.ptr = <const uchar*> t.own
    return n


cdef int64_t utc_seconds(const uchar* s):
    """Seconds since the epoch for ``YYYY-MM-DD HH:MM:SS`` (or ``T``) in UTC;
    0 when that is not the form, not a real time, or out of InfluxDB's range."""
    cdef int i
    cdef int64_t y, m, d, hh, mm, ss, era, yoe, doy, doe, days, secs
    for i in range(19):
        if i == 4 or i == 7:
            if s[i] != 45:
                return 0
        elif i == 10:
            if s[i] != 32 and s[i] != 84:
                return 0
        elif i == 13 or i == 16:
            if s[i] != 58:
                return 0
        elif not is_digit(s[i]):
            return 0
    y = (s[0] - 48) * 1000 + (s[1] - 48) * 100 + (s[2] - 48) * 10 + (s[3] - 48)
    m = (s[5] - 48) * 10 + (s[6] - 48)
    d = (s[8] - 48) * 10 + (s[9] - 48)
    hh = (s[11] - 48) * 10 + (s[12] - 48)
    mm = (s[14] - 48) * 10 + (s[15] - 48)
    ss = (s[17] - 48) * 10 + (s[18] - 48)
    if y < 1970 or not (1 <= m <= 12) or d < 1 or hh > 23 or mm > 59 or ss > 59:
        return 0
    if d > days_in_month(y, m):
        return 0
    # Howard Hinnant's days_from_civil.
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    secs = days * 86400 + hh * 3600 + mm * 60 + ss
    if secs < 1 or secs > 9223372036:  # times._MIN_NS .. _MAX_NS
        return 0
    return secs


cdef int days_in_month(int64_t y, int64_t m):
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    if m == 4 or m == 6 or m == 9 or m == 11:
        return 30
    return 31


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

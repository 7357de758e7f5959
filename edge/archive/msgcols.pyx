# cython: boundscheck=False, wraparound=False, cdivision=True
"""InfluxDB's chunked MessagePack answer straight into Arrow column buffers (compiled).

The archive's export reads ``SELECT *`` as chunked MessagePack: one document per
chunk, ``{"results": [{"series": [{"columns": [...], "values": [[...], ...]}]}]}``.
Decoding that with ``msgpack`` makes a Python object per value, then Arrow copies
them again: most of the export's CPU. Here a document is walked once and every
value lands in its column's buffer (validity bitmap, 8-byte values or bits, string
offsets and bytes); ``edge.archive.columnar`` wraps the buffers as Arrow arrays.

- ``Framer().end(buf, start)``: where the document starting at ``start`` ends, -1
  while it is incomplete (more bytes to read).
- ``decode(buf, start, end, kinds)``: its series as ``(columns, rows, buffers)``,
  or ``None`` when the document holds anything this fast path does not take (an
  error, a column not in ``kinds``, a value of another type than its column's,
  an unsigned above int64): the caller decodes that document with ``msgpack``,
  the reference path, which keeps every value exact or fails the window.

Kinds: 0 time (int, never null), 1 float64, 2 int64, 3 bool, 4 string, 5 skipped.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from libc.stdint cimport int64_t, uint64_t, uint8_t
from libc.string cimport memcpy
from cpython.mem cimport PyMem_Free, PyMem_Malloc

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX

DEF K_TIME = 0
DEF K_FLOAT = 1
DEF K_INT = 2
DEF K_BOOL = 3
DEF K_STR = 4
DEF K_SKIP = 5


cdef inline uint64_t _be(const uint8_t* p, int n) noexcept nogil:
    cdef uint64_t v = 0
    cdef int k
    for k in range(n):
        v = (v << 8) | p[k]
    return v


cdef Py_ssize_t _item(const uint8_t* p, Py_ssize_t i, Py_ssize_t end, Py_ssize_t* children) noexcept nogil:
    """Position after the header and payload of the item at ``i`` (its nested
    items not included, their number in ``children``); -1 if past ``end``."""
    cdef uint8_t b
    cdef Py_ssize_t size = 0, head = 1
    if i >= end:
        return -1
    b = p[i]
    children[0] = 0
    if b <= 0x7f or b >= 0xe0 or b == 0xc0 or b == 0xc2 or b == 0xc3:
        return i + 1
    if 0x80 <= b <= 0x8f:
        children[0] = 2 * (b & 0x0f)
        return i + 1
    if 0x90 <= b <= 0x9f:
        children[0] = b & 0x0f
        return i + 1
    if 0xa0 <= b <= 0xbf:
        size = b & 0x1f
    elif b == 0xc4 or b == 0xd9 or b == 0xc5 or b == 0xda or b == 0xc6 or b == 0xdb:
        head = 1 + (1 if b in (0xc4, 0xd9) else 2 if b in (0xc5, 0xda) else 4)
        if i + head > end:
            return -1
        size = <Py_ssize_t>_be(p + i + 1, head - 1)
    elif b == 0xc7 or b == 0xc8 or b == 0xc9:
        head = 2 + (1 if b == 0xc7 else 2 if b == 0xc8 else 4)
        if i + head > end:
            return -1
        size = <Py_ssize_t>_be(p + i + 1, head - 2)
    elif b == 0xca or b == 0xcb:
        size = 4 if b == 0xca else 8
    elif 0xcc <= b <= 0xcf:
        size = 1 << (b - 0xcc)
    elif 0xd0 <= b <= 0xd3:
        size = 1 << (b - 0xd0)
    elif 0xd4 <= b <= 0xd8:
        head = 2
        size = 1 << (b - 0xd4)
    elif b == 0xdc or b == 0xdd or b == 0xde or b == 0xdf:
        head = 3 if b in (0xdc, 0xde) else 5
        if i + head > end:
            return -1
        children[0] = <Py_ssize_t>_be(p + i + 1, head - 1) * (2 if b >= 0xde else 1)
        return i + head
    else:  # 0xc1: never used
        return -2
    if i + head + size > end:
        return -1
    return i + head + size


cdef Py_ssize_t _skip(const uint8_t* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """Position after the whole item at ``i``; -1 incomplete, -2 malformed."""
    cdef Py_ssize_t todo = 1, children = 0
    while todo:
        i = _item(p, i, end, &children)
        if i < 0:
            return i
        todo += children - 1
    return i


cdef class Framer:
    """Where each document of a growing buffer ends, resuming where the last
    look stopped (a document arrives in many reads: it is walked once)."""

    cdef Py_ssize_t pos, todo

    def __init__(self):
        self.pos = 0
        self.todo = 0

    def end(self, bytearray buf, Py_ssize_t start):
        """End of the document at ``start``; -1 while incomplete (ValueError if malformed)."""
        cdef const uint8_t* p = <const uint8_t*>PyByteArray_AS_STRING(buf)
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(buf), i, children = 0
        if self.todo == 0:
            self.pos, self.todo = start, 1
        while self.todo:
            i = _item(p, self.pos, size, &children)
            if i == -1:
                return -1
            if i == -2:
                raise ValueError("influxdb: malformed MessagePack answer")
            self.pos = i
            self.todo += children - 1
        return self.pos

    def shift(self, Py_ssize_t n):
        """The buffer lost its first ``n`` bytes."""
        self.pos -= n


cdef inline Py_ssize_t _container(const uint8_t* p, Py_ssize_t* i, bint is_map):
    """Length of the array (or map) at ``i[0]``, moved past its header; -1 if not one."""
    cdef uint8_t b = p[i[0]]
    cdef Py_ssize_t n
    if (0x80 if is_map else 0x90) <= b <= (0x8f if is_map else 0x9f):
        i[0] += 1
        return b & 0x0f
    if b == (0xde if is_map else 0xdc):
        n = <Py_ssize_t>_be(p + i[0] + 1, 2)
        i[0] += 3
        return n
    if b == (0xdf if is_map else 0xdd):
        n = <Py_ssize_t>_be(p + i[0] + 1, 4)
        i[0] += 5
        return n
    return -1


cdef inline Py_ssize_t _str(const uint8_t* p, Py_ssize_t* i, Py_ssize_t* start):
    """Length of the string at ``i[0]`` (its bytes at ``start[0]``), moved past it; -1 if not one."""
    cdef uint8_t b = p[i[0]]
    cdef Py_ssize_t head, n
    if 0xa0 <= b <= 0xbf:
        head, n = 1, b & 0x1f
    elif b == 0xd9 or b == 0xda or b == 0xdb:
        head = 2 if b == 0xd9 else 3 if b == 0xda else 5
        n = <Py_ssize_t>_be(p + i[0] + 1, head - 1)
    else:
        return -1
    start[0] = i[0] + head
    i[0] += head + n
    return n


cdef object _key(const uint8_t* p, Py_ssize_t* i):
    cdef Py_ssize_t s = 0
    cdef Py_ssize_t n = _str(p, i, &s)
    if n < 0:
        return None
    return (<const char*>p)[s:s + n].decode("utf-8")


cdef inline void _set(uint8_t* bits, Py_ssize_t r) noexcept nogil:
    bits[r >> 3] |= <uint8_t>(1 << (r & 7))


cdef bint _int(const uint8_t* p, Py_ssize_t* i, int64_t* out) noexcept nogil:
    cdef uint8_t b = p[i[0]]
    cdef uint64_t u
    if b <= 0x7f:
        out[0] = b
        i[0] += 1
    elif b >= 0xe0:
        out[0] = <int64_t>(<signed char>b)
        i[0] += 1
    elif 0xcc <= b <= 0xcf:
        u = _be(p + i[0] + 1, 1 << (b - 0xcc))
        if u > <uint64_t>0x7fffffffffffffffULL:
            return False
        out[0] = <int64_t>u
        i[0] += 1 + (1 << (b - 0xcc))
    elif b == 0xd0:
        out[0] = <int64_t>(<signed char>p[i[0] + 1])
        i[0] += 2
    elif b == 0xd1:
        out[0] = <int64_t>(<short>_be(p + i[0] + 1, 2))
        i[0] += 3
    elif b == 0xd2:
        out[0] = <int64_t>(<int>_be(p + i[0] + 1, 4))
        i[0] += 5
    elif b == 0xd3:
        out[0] = <int64_t>_be(p + i[0] + 1, 8)
        i[0] += 9
    else:
        return False
    return True


cdef object _values(const uint8_t* p, Py_ssize_t* at, list kinds):
    """The ``values`` array at ``at[0]`` into column buffers; None if not taken."""
    cdef Py_ssize_t rows = _container(p, at, False)
    cdef Py_ssize_t ncols = len(kinds)
    if rows < 0:
        return None
    # per column, C arrays: its kind, validity bits, values, nulls
    cdef Py_ssize_t* table = <Py_ssize_t*>PyMem_Malloc(4 * max(ncols, 1) * sizeof(Py_ssize_t))
    if table == NULL:
        raise MemoryError()
    try:
        return _fill(p, at, kinds, rows, ncols, table)
    finally:
        PyMem_Free(table)


cdef object _fill(const uint8_t* p, Py_ssize_t* at, list kinds, Py_ssize_t rows, Py_ssize_t ncols, Py_ssize_t* table):
    cdef Py_ssize_t r, c, i = at[0], s = 0, n, used
    cdef int64_t v = 0
    cdef uint64_t raw
    cdef uint8_t b
    cdef int kind
    cdef Py_ssize_t* kind_of = table
    cdef uint8_t** valid = <uint8_t**>(table + ncols)
    cdef uint8_t** data = <uint8_t**>(table + 2 * ncols)
    cdef Py_ssize_t* nulls = table + 3 * ncols
    cols = []
    for c in range(ncols):
        kind = kinds[c]
        width = 0 if kind == K_SKIP else (rows + 7) // 8 if kind == K_BOOL else 4 * (rows + 1) if kind == K_STR else 8 * rows
        col = [kind, bytearray((rows + 7) // 8), bytearray(width), bytearray(), 0]
        cols.append(col)
        kind_of[c] = kind
        valid[c] = <uint8_t*>PyByteArray_AS_STRING(col[1])
        data[c] = <uint8_t*>PyByteArray_AS_STRING(col[2])
        nulls[c] = 0
    for r in range(rows):
        if _container(p, &i, False) != ncols:
            return None
        for c in range(ncols):
            kind = kind_of[c]
            b = p[i]
            if kind == K_SKIP:
                i = _skip(p, i, PY_SSIZE_T_MAX)
                continue
            if b == 0xc0 and kind != K_TIME:  # null
                i += 1
                nulls[c] += 1
                if kind == K_STR:
                    (<int*>data[c])[r + 1] = (<int*>data[c])[r]
                continue
            if kind == K_FLOAT:
                if b != 0xcb:
                    return None
                raw = _be(p + i + 1, 8)
                memcpy(data[c] + 8 * r, &raw, 8)
                i += 9
            elif kind == K_TIME or kind == K_INT:
                if not _int(p, &i, &v):
                    return None
                (<int64_t*>data[c])[r] = v
            elif kind == K_BOOL:
                if b != 0xc2 and b != 0xc3:
                    return None
                if b == 0xc3:
                    _set(data[c], r)
                i += 1
            else:
                n = _str(p, &i, &s)
                if n < 0:
                    return None
                used = (<int*>data[c])[r]
                if used + n > 0x7fffffff:
                    return None
                text = cols[c][3]
                if used + n > PyByteArray_GET_SIZE(text):
                    PyByteArray_Resize(text, 2 * (used + n) + 4096)
                memcpy(PyByteArray_AS_STRING(text) + used, p + s, n)
                (<int*>data[c])[r + 1] = <int>(used + n)
            _set(valid[c], r)
    for c in range(ncols):
        cols[c][4] = nulls[c]
    at[0] = i
    return rows, cols


def decode(bytearray buf, Py_ssize_t start, Py_ssize_t end, dict kinds):
    """Series of the complete document in ``buf[start:end]``: a list of
    ``(columns, rows, [[kind, validity, data, string bytes, nulls], ...])``; None
    when the fast path does not take it."""
    cdef const uint8_t* p = <const uint8_t*>PyByteArray_AS_STRING(buf)
    cdef Py_ssize_t i = start, nres, nser, nkeys, a, b, c, k
    out = []
    if _container(p, &i, True) != 1 or _key(p, &i) != "results":
        return None
    nres = _container(p, &i, False)
    if nres < 0:
        return None
    for a in range(nres):
        nkeys = _container(p, &i, True)
        if nkeys < 0:
            return None
        for k in range(nkeys):
            key = _key(p, &i)
            if key == "series":
                nser = _container(p, &i, False)
                if nser < 0:
                    return None
                for b in range(nser):
                    series = _series(p, &i, kinds)
                    if series is None:
                        return None
                    out.append(series)
            elif key in ("statement_id", "partial"):
                i = _skip(p, i, end)
            else:  # "error", or anything unforeseen: the reference path
                return None
    return out if i == end else None


cdef object _series(const uint8_t* p, Py_ssize_t* i, dict kinds):
    cdef Py_ssize_t nkeys = _container(p, i, True), k, c, ncols
    columns = None
    decoded = None
    if nkeys < 0:
        return None
    for k in range(nkeys):
        key = _key(p, i)
        if key == "columns":
            ncols = _container(p, i, False)
            if ncols < 0:
                return None
            columns = []
            for c in range(ncols):
                name = _key(p, i)
                if name is None or name not in kinds:
                    return None
                columns.append(name)
        elif key == "values":
            if columns is None:
                return None
            decoded = _values(p, i, [kinds[n] for n in columns])
            if decoded is None:
                return None
        elif key in ("name", "tags", "partial"):
            i[0] = _skip(p, i[0], PY_SSIZE_T_MAX)
        else:
            return None
    if columns is None:
        return None
    if decoded is None:
        decoded = (0, [[kinds[n], bytearray(), bytearray(8 if kinds[n] != 4 else 4), bytearray(), 0] for n in columns])
    return columns, decoded[0], decoded[1]

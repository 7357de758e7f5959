# The compiled parser's scanner (included by onepass.pyx, whose docstring says what it
# does): byte classes, buffers, JSON tokens, validating skips, keys and key sets.

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
    """``s`` with a backslash before each byte ``table`` marks (the escaping rule of edge/core/lineproto.py)."""
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

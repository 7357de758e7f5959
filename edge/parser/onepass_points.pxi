# The compiled parser's points (included by onepass.pyx): a service element's members,
# its objects as points of their own, and the lines, as points.LayerWalk makes them.

cdef int entries(_Walk w, int level, Py_ssize_t* count) except -1:
    """The members of the object at ``w.p`` appended to ENTRIES; an object
    value (level 0 only) is followed by its own members."""
    cdef const uchar* p = skip_ws(w.p + 1, w.end)
    cdef const uchar* end = w.end
    cdef KeySet* keys = &KEYSETS[level]
    cdef Entry* e
    cdef Key k
    cdef Py_ssize_t at
    cdef int r, kind, sflags
    cdef uchar c
    keyset_clear(keys)
    if p < end and p[0] == 125:
        w.p = p + 1
        return 0
    while True:
        p = read_key(p, end, &k, &w.reason)
        if p == NULL:
            return w.reason
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
            w.p = p
            r = entries(w, 1, count)
            if r:
                return r
            e.child_end = count[0]
            p = w.p
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
    w.p = p + 1
    return 0

# ------------------------------------------------------------ points

cdef int element(_Walk w, Py_ssize_t position) except -1:
    """points.LayerWalk.device()/element(): a service element's objects are
    points of their own (written first), then the element's point."""
    cdef Py_ssize_t count = 0, i, id_at = -1, index_at = -1
    cdef int r
    cdef bint found
    r = entries(w, 0, &count)
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
        r = identifier(&ENTRIES[id_at], &w.service, &found)
        if r:
            return r
    if not found:  # no usable id: the position, and the id stays a field
        id_at = -1
        w.service.len = position_text(position, &w.service)
    i = 0
    while i < count:
        if ENTRIES[i].kind == K_OBJ:
            r = child(w, i)
            if r:
                return r
            i = ENTRIES[i].child_end
        else:
            i += 1
    OUT.len = 0
    put_measurement(w, NULL, 0)
    put_tags(w, NULL, 0, NULL)
    return emit(w, 0, count, id_at)

cdef int child(_Walk w, Py_ssize_t at) except -1:
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
    put_measurement(w, obj.key, obj.klen)
    put_tags(w, KEY.data, KEY.len, &own)
    return emit(w, lo, hi, index_at)

cdef int put_measurement(_Walk w, const uchar* path, Py_ssize_t path_len) except -1:
    """names.measurement(base) or names.measurement(f"{base}_{path}"): a leading
    ``#`` gets a backslash, commas and spaces are escaped."""
    if w.base[0] == 35:
        put(&OUT, b"\\", 1)
    put_escaped(&OUT, w.base, w.base_len, ESC_MEASUREMENT)
    if path != NULL:
        put(&OUT, b"_", 1)
        put_escaped(&OUT, path, path_len, ESC_MEASUREMENT)
    return 0

cdef int put_tags(_Walk w, const char* index_key, Py_ssize_t index_key_len, Text* index) except -1:
    """The tags sorted by key as InfluxDB sorts them: device, service_id,
    site_id, and a child's ``<key>_index`` where bisect.bisect puts it."""
    cdef int before = -1  # how many of the other keys sort at or before the index key
    cdef int written = 0
    if index_key != NULL:
        before = 0
        if w.device_len and bytes_cmp(b"device", 6, index_key, index_key_len) <= 0:
            before += 1
        if bytes_cmp(b"service_id", 10, index_key, index_key_len) <= 0:
            before += 1
        if bytes_cmp(b"site_id", 7, index_key, index_key_len) <= 0:
            before += 1
    if before == written:
        put_index(w, index_key, index_key_len, index)
    if w.device_len:
        put(&OUT, b",device=", 8)
        put_escaped(&OUT, w.device, w.device_len, ESC_TAG)
        written += 1
        if before == written:
            put_index(w, index_key, index_key_len, index)
    put(&OUT, b",service_id=", 12)
    put_escaped(&OUT, w.service.ptr, w.service.len, ESC_TAG)
    written += 1
    if before == written:
        put_index(w, index_key, index_key_len, index)
    put(&OUT, b",site_id=", 9)
    put_escaped(&OUT, w.site.ptr, w.site.len, ESC_TAG)
    written += 1
    if before == written:
        put_index(w, index_key, index_key_len, index)
    return 0

cdef int put_index(_Walk w, const char* key, Py_ssize_t key_len, Text* value) except -1:
    put(&OUT, b",", 1)
    put(&OUT, key, key_len)
    put(&OUT, b"=", 1)
    put_escaped(&OUT, value.ptr, value.len, ESC_TAG)
    return 0

cdef int emit(_Walk w, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t skip) except -1:
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
        w.empty_points += 1
        return 0
    put(&OUT, w.suffix, w.suffix_len)
    key = PyBytes_FromStringAndSize(OUT.data, key_len)
    if key in w.seen:
        return R_DUP_SERIES
    w.seen.add(key)
    line = PyBytes_FromStringAndSize(OUT.data, OUT.len)
    w.points.append((key, line))
    return 0

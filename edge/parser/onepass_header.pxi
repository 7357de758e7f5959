# The compiled parser's header (included by onepass.pyx): the site tag and the time
# suffix of every line.

cdef int header(_Walk w) except -1:
    """site_id and timestamp -> the site tag and the line's time suffix."""
    cdef const uchar* p = w.p
    cdef const uchar* end = w.end
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
        p = read_key(p, end, &k, &w.reason)
        if p == NULL:
            return w.reason
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
            p = skip_value(p, end, &w.reason)
            if p == NULL:
                return w.reason
        p = skip_ws(p, end)
        if p < end and p[0] == 44:
            p = skip_ws(p + 1, end)
            continue
        if p < end and p[0] == 125:
            break
        return R_SYNTAX
    w.p = p + 1
    if site.kind == 0:
        return R_SITE
    if stamp.kind != K_STR:
        return R_TIME
    r = site_tag(w, &site)
    if r:
        return r
    return time_suffix(w, &stamp)

cdef int site_tag(_Walk w, Entry* e) except -1:
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
    w.site.ptr, w.site.len = e.val, e.vlen
    return 0

cdef int time_suffix(_Walk w, Entry* e) except -1:
    """times.timestamp_ns(): in C for a UTC ``YYYY-MM-DD HH:MM:SS``; any other
    zone or form through that function itw."""
    cdef const uchar* s = e.val
    cdef int64_t secs
    cdef object zone, site, ns
    if e.sflags:
        return R_TIME
    zones = w.zones
    if zones.sites:
        site = site_text(w)
        zone = zones.for_site(site)
    else:
        zone = zones.default
    if zone is _UTC and e.vlen == 19:
        secs = utc_seconds(s)
        if secs > 0:
            set_suffix(w, secs * 1000000000)
            return 0
    try:
        ns, w.outcome = timestamp_ns(PyBytes_FromStringAndSize(<const char*> s, e.vlen).decode(),
                                        zone, w.received_at_ns)
    except ParseError:
        return R_TIME
    set_suffix(w, ns)
    return 0

cdef object site_text(_Walk w):
    """The site id as parse() looks its zone up: the string, or str(int)."""
    return PyBytes_FromStringAndSize(<const char*> w.site.ptr, w.site.len).decode()

cdef void set_suffix(_Walk w, int64_t ns):
    cdef char digits[24]
    cdef int n = 0, i
    while ns:
        digits[n] = 48 + ns % 10
        ns //= 10
        n += 1
    w.suffix[0] = 32
    for i in range(n):
        w.suffix[1 + i] = digits[n - 1 - i]
    w.suffix_len = n + 1

# ------------------------------------------------------------ FieldDeviceLayer

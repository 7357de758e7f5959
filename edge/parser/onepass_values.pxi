# The compiled parser's values (included by onepass.pyx): numbers as the pure parser
# writes them, ids as points.identifier() reads them, blank names, UTC times.

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

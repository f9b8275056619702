/* err.c: the one-line error report every fallible function fills, and status names. */
#include "knob_internal.h"

#include <stdarg.h>

knob_status knob_fail(knob_err *err, knob_status code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    /* one line: control characters (from user-supplied text) become '?' */
    for (char *c = err->msg; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    return code;
}

const char *knob_status_name(knob_status code)
{
    switch (code) {
    case KNOB_OK:          return "ok";
    case KNOB_ERR_USAGE:   return "usage";
    case KNOB_ERR_SHAPE:   return "shape";
    case KNOB_ERR_FORMAT:  return "format";
    case KNOB_ERR_IO:      return "io";
    case KNOB_ERR_NOMEM:   return "out of memory";
    case KNOB_ERR_NUMERIC: return "numeric";
    }
    return "unknown";
}

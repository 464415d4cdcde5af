/*
 * tokenfile.h - files that hold secrets the program itself rewrites (the
 * OAuth token pair of a system).
 *
 * A token file is replaced whole or not at all: the new text goes to a
 * temporary file beside it (mode 0600, created exclusively), is flushed to
 * disk, and is renamed over the old one; then the directory is flushed, so
 * after a crash the file holds the old pair or the new one, never a mix.
 * Nothing here logs or prints what a file holds.
 */
#ifndef DF_TOKENFILE_H
#define DF_TOKENFILE_H

#include "err.h"

/* Reads the whole file (at most 16 KiB) into *out (caller frees and should
 * blank it). DF_FAIL_CONFIG when it cannot be read. */
int tokenfile_read(const char *path, char **out, struct df_err *err);
/* Replaces path with text atomically, mode 0600 (see above). DF_FAIL_STATE
 * when it cannot; the old file is then left as it was. */
int tokenfile_write(const char *path, const char *text, struct df_err *err);
/* Whether a file can be created beside path (the temporary file of a
 * later tokenfile_write): checked before a refresh, because the old
 * refresh token stops working with it and the new one must be kept. */
int tokenfile_writable(const char *path, struct df_err *err);

#endif

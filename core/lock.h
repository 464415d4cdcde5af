/*
 * lock.h - one run at a time (I7): an flock(2) on a lock file beside the
 * state. The kernel drops the lock when the process dies, so a crashed run
 * never blocks the next one.
 */
#ifndef DF_LOCK_H
#define DF_LOCK_H

#include "err.h"

/* Takes the lock without waiting. Returns the open descriptor, -1 with
 * DF_FAIL_TEMP when another process holds it (message names its pid), or
 * -1 with DF_FAIL_STATE when the file cannot be opened. */
int lock_take(const char *path, struct df_err *err);
void lock_release(int fd);

#endif

/*
 * lock.c - the run lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lock.h"

int lock_take(const char *path, struct df_err *err)
{
	char pid[32] = "";
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ssize_t n;

	if (fd < 0)
		return df_fail(err, DF_FAIL_STATE, "cannot open lock file %s: %s", path, strerror(errno));
	(void)fchmod(fd, 0600);        /* a lock file made 0644 by an earlier version */
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(fd);
		return df_fail(err, DF_FAIL_TEMP, "another run holds the lock %s (pid %s)", path,
			       pid[0] ? pid : "unknown");
	}
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0)
		n = pwrite(fd, pid, strlen(pid), 0);
	(void)n;
	return fd;
}

void lock_release(int fd)
{
	if (fd >= 0)
		close(fd);
}

/*
 * tokenfile.c - read and atomically replace files holding secrets.
 *
 * Owns no secret: callers pass text in and take text out. Error messages
 * name the file and the reason, never its content.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokenfile.h"
#include "str.h"

#define TOKENFILE_MAX (16 * 1024)

int tokenfile_read(const char *path, char **out, struct df_err *err)
{
	char *buf = xcalloc(1, TOKENFILE_MAX + 1);
	size_t n = 0;
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*out = NULL;
	if (fd < 0) {
		free(buf);
		return df_fail(err, DF_FAIL_CONFIG, "cannot read token file %s: %s", path, strerror(errno));
	}
	while (n < TOKENFILE_MAX && (got = read(fd, buf + n, TOKENFILE_MAX - n)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int e = errno;
			close(fd);
			free(buf);
			return df_fail(err, DF_FAIL_CONFIG, "cannot read token file %s: %s", path, strerror(e));
		}
		n += (size_t)got;
	}
	close(fd);
	if (n == TOKENFILE_MAX) {
		explicit_bzero(buf, TOKENFILE_MAX);
		free(buf);
		return df_fail(err, DF_FAIL_CONFIG, "token file %s is larger than %d bytes", path, TOKENFILE_MAX);
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

/* The directory of path, for its temporary file and its fsync. */
static char *dir_of(const char *path)
{
	char *copy = xstrdup(path), *dir = xstrdup(dirname(copy));

	free(copy);
	return dir;
}

static char *temp_name(const char *path)
{
	return xasprintf("%s.tmp.%ld", path, (long)getpid());
}

int tokenfile_writable(const char *path, struct df_err *err)
{
	char *tmp = temp_name(path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0) {
		int e = errno;
		free(tmp);
		return df_fail(err, DF_FAIL_STATE, "cannot write beside token file %s: %s", path, strerror(e));
	}
	close(fd);
	unlink(tmp);
	free(tmp);
	return 0;
}

int tokenfile_write(const char *path, const char *text, struct df_err *err)
{
	char *tmp = temp_name(path), *dir = dir_of(path);
	size_t len = strlen(text), done = 0;
	int fd, dfd, e = 0;

	unlink(tmp);    /* a leftover of a crashed run of ours (same pid) */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		e = errno;
		goto fail;
	}
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			break;
		}
		done += (size_t)n;
	}
	/* fchmod too: the umask may have taken bits off, never added any. */
	if (e == 0 && (fchmod(fd, 0600) != 0 || fsync(fd) != 0))
		e = errno;
	if (close(fd) != 0 && e == 0)
		e = errno;
	if (e == 0 && rename(tmp, path) != 0)
		e = errno;
	if (e != 0) {
		unlink(tmp);
		goto fail;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(tmp);
	free(dir);
	return 0;
fail:
	free(tmp);
	free(dir);
	return df_fail(err, DF_FAIL_STATE, "cannot replace token file %s: %s", path, strerror(e));
}

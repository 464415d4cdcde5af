/*
 * open.c - the state file itself: opening it (WAL mode with a busy
 * timeout; the run lock, core/lock.c, already keeps a second run away, the
 * timeout only covers an auditor reading meanwhile), deciding whether it is
 * ours and sound or refusing it, the schema's migrations (schema.h),
 * init-state, closing, and the savepoints a run's transactions use.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "schema.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static int exec(struct state *st, const char *text, struct df_err *err)
{
	char *msg = NULL;

	if (sqlite3_exec(st->db, text, NULL, NULL, &msg) != SQLITE_OK) {
		st->failed = true;
		df_fail(err, DF_FAIL_STATE, "state: %s", msg ? msg : "statement failed");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int user_version(struct state *st, int *v, struct df_err *err)
{
	sqlite3_stmt *s;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, err, "schema version");
	*v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
	sqlite3_finalize(s);
	return 0;
}

/* The schema versions whose migrations copy the largest tables into
 * smaller ones (issue 9): 10 (WITHOUT ROWID tables), 11 (a write's fields
 * packed in its row). The file they leave behind is mostly free pages. */
static bool crosses_compaction(int from, int to)
{
	static const int compacts[] = { 10, 11 };

	for (size_t i = 0; i < sizeof(compacts) / sizeof(compacts[0]); i++)
		if (from < compacts[i] && to >= compacts[i])
			return true;
	return false;
}

static int migrate(struct state *st, struct df_err *err)
{
	int v, from;

	if (user_version(st, &v, err))
		return -1;
	from = v;
	if (v > SCHEMA_VERSION)
		return df_fail(err, DF_FAIL_STATE,
			       "state: schema version %d is newer than this dfreconcile knows (%d)",
			       v, SCHEMA_VERSION);
	for (; v < SCHEMA_VERSION; v++) {
		char pragma[64];
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
		if (exec(st, "BEGIN IMMEDIATE", err))
			return -1;
		if (exec(st, migrations[v], err) || exec(st, pragma, err)) {
			exec(st, "ROLLBACK", NULL);
			return df_wrap(err, "migration %d", v + 1);
		}
		if (exec(st, "COMMIT", err))
			return -1;
	}
	/* Once, when an existing file crosses it: the space the old tables
	 * held goes back to the file system (about half a second per 10,000
	 * contacts). A failure (no room for the copy VACUUM writes) leaves
	 * the migrated file as it is, whole: the free pages are reused. */
	if (from > 0 && crosses_compaction(from, v))
		exec(st, "VACUUM", NULL);
	return 0;
}

/*
 * Trusting the file. A state file is ours when it carries our
 * application_id (STATE_APPLICATION_ID), or, written before the id
 * existed, when it has application_id 0 and our schema (it is stamped by
 * the next run). Anything else that exists is refused, never created over,
 * migrated or repaired: a zero-length file (an emptied state would silently
 * forget the opt-out registry and the tombstones), another program's SQLite
 * file, and a file that fails PRAGMA quick_check. quick_check reads every
 * page but skips the index cross-checks of integrity_check; it runs when
 * the file may not be what our last clean close left (check_needed), so a
 * damaged file never reaches a write, and a quiet minute does not read the
 * whole file. The admin's way out is `dfreconcile init-state` (state_init).
 */
static const char refuse_hint[] =
	"restore it from a backup, or move it aside and start a new state with "
	"'dfreconcile init-state' (the opt-out registry, links and tombstones in it are then forgotten)";

static int refuse(struct df_err *err, const char *path, const char *why)
{
	return df_fail(err, DF_FAIL_STATE, "state file %s %s: %s", path, why, refuse_hint);
}

/* One integer PRAGMA; -1 when the file cannot answer (not a database). */
static int pragma_int(struct state *st, const char *text, long long *out)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, text, -1, &s, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(s);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_finalize(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* 0 when the file passes quick_check; -1 with the first problem in why. */
static int quick_check(struct state *st, char *why, size_t n)
{
	sqlite3_stmt *s;
	const char *first;
	int rc;

	if (sqlite3_prepare_v2(st->db, "PRAGMA quick_check(1)", -1, &s, NULL) != SQLITE_OK) {
		snprintf(why, n, "%s", sqlite3_errmsg(st->db));
		return -1;
	}
	rc = sqlite3_step(s);
	first = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
	rc = rc == SQLITE_ROW && first && strcmp(first, "ok") == 0 ? 0 : -1;
	if (rc)
		snprintf(why, n, "%s", first ? first : sqlite3_errmsg(st->db));
	sqlite3_finalize(s);
	return rc;
}

/*
 * When quick_check runs. It reads every page of the file (0.2 s at 10,000
 * contacts, seconds at 100,000), so paid at every open it made each quiet
 * minute cost what the file weighs. A writer's clean close (state_close:
 * every statement succeeded and the write-ahead log was checkpointed away)
 * records what the file then looks like in <path>-checked (0600): device,
 * inode, size, modification and change times to the nanosecond, and when
 * quick_check last passed. An open checks the file again when
 *  - there is no such record, or it cannot be read;
 *  - a write-ahead log with frames in it is there: a run or an admin
 *    command did not close cleanly (killed, crashed, power lost), or
 *    another process has the file open;
 *  - the file is not the one the record describes: something wrote it,
 *    replaced or restored it since (the change time cannot be set back);
 *  - the last check that passed is CHECK_EVERY_S old: damage that leaves
 *    the times alone (a failing disk) is found within a day.
 * Readers (report, status, explain) use the record too; they never write it.
 */
#define CHECK_EVERY_S (24 * 3600LL)

struct check_record {
	long long dev, ino, size, mtime_s, mtime_ns, ctime_s, ctime_ns, checked_s;
};

static char *check_path(const char *path)
{
	return xasprintf("%s-checked", path);
}

static void describe(const struct stat *sb, struct check_record *c)
{
	c->dev = (long long)sb->st_dev;
	c->ino = (long long)sb->st_ino;
	c->size = (long long)sb->st_size;
	c->mtime_s = (long long)sb->st_mtim.tv_sec;
	c->mtime_ns = sb->st_mtim.tv_nsec;
	c->ctime_s = (long long)sb->st_ctim.tv_sec;
	c->ctime_ns = sb->st_ctim.tv_nsec;
}

static bool same_file(const struct check_record *a, const struct check_record *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_s == b->mtime_s &&
	       a->mtime_ns == b->mtime_ns && a->ctime_s == b->ctime_s && a->ctime_ns == b->ctime_ns;
}

/* NULL when the file at path (sb) is what our last clean close left and
 * was checked within CHECK_EVERY_S (*checked_s: when); else why to check. */
static const char *check_needed(const char *path, const struct stat *sb, long long *checked_s)
{
	char *name = check_path(path), *wal = xasprintf("%s-wal", path);
	struct check_record rec = { 0 }, now = { 0 };
	struct stat wb;
	const char *why = NULL;
	FILE *f = fopen(name, "r");

	describe(sb, &now);
	if (f == NULL || fscanf(f, "dfreconcile-checked 1 %lld %lld %lld %lld %lld %lld %lld %lld",
				&rec.dev, &rec.ino, &rec.size, &rec.mtime_s, &rec.mtime_ns, &rec.ctime_s,
				&rec.ctime_ns, &rec.checked_s) != 8)
		why = "no record of a clean close";
	else if (stat(wal, &wb) == 0 && wb.st_size > 0)
		why = "a write-ahead log is left: the last run did not close cleanly, or one is running";
	else if (!same_file(&rec, &now))
		why = "the file changed since the last clean close";
	else if (time(NULL) - rec.checked_s >= CHECK_EVERY_S || rec.checked_s > time(NULL))
		why = "the last check is a day old";
	if (f)
		fclose(f);
	free(name);
	free(wal);
	*checked_s = rec.checked_s;
	return why;
}

/* After a writer's clean close: records the file as it is now. A log
 * still holding frames (a reader kept it open) leaves no record. */
static void check_record_write(const char *path, long long checked_s)
{
	char *name = check_path(path), *wal = xasprintf("%s-wal", path);
	struct check_record rec = { 0 };
	struct stat sb, wb;
	int fd;

	if (stat(path, &sb) == 0 && !(stat(wal, &wb) == 0 && wb.st_size > 0) &&
	    (fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, S_IRUSR | S_IWUSR)) >= 0) {
		char line[256];
		int n;

		describe(&sb, &rec);
		n = snprintf(line, sizeof(line), "dfreconcile-checked 1 %lld %lld %lld %lld %lld %lld %lld %lld\n",
			     rec.dev, rec.ino, rec.size, rec.mtime_s, rec.mtime_ns, rec.ctime_s, rec.ctime_ns,
			     checked_s);
		/* A short write leaves a record that does not parse: checked. */
		if (write(fd, line, (size_t)n) != n)
			(void)ftruncate(fd, 0);
		close(fd);
	}
	free(name);
	free(wal);
}

/* Decides whether the open file st at path is ours and sound (quick_check
 * only when check says why). *legacy is set for a file of ours written
 * before the application_id existed. Returns 0, or -1 with *refused and the
 * reason in err. */
static int identify(struct state *st, const char *path, const char *check, bool *legacy, bool *refused,
		    struct df_err *err)
{
	long long app, version, ours = 0;
	char why[200], problem[100];

	*legacy = false;
	*refused = true;
	if (pragma_int(st, "PRAGMA application_id", &app) || pragma_int(st, "PRAGMA user_version", &version)) {
		snprintf(why, sizeof(why), "is damaged (%s)", sqlite3_errmsg(st->db));
		return refuse(err, path, why);
	}
	if (app == 0 && pragma_int(st, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
				   "AND name IN ('run', 'cursor', 'link', 'snapshot', 'outbox')", &ours)) {
		snprintf(why, sizeof(why), "is damaged (%s)", sqlite3_errmsg(st->db));
		return refuse(err, path, why);
	}
	if (app != STATE_APPLICATION_ID && !(app == 0 && version >= 1 && ours == 5)) {
		snprintf(why, sizeof(why), "is not a dfreconcile state file (application_id %lld, "
			 "expected %d)", app, STATE_APPLICATION_ID);
		return refuse(err, path, why);
	}
	if (check && quick_check(st, problem, sizeof(problem))) {
		snprintf(why, sizeof(why), "is damaged (quick_check: %s)", problem);
		return refuse(err, path, why);
	}
	*legacy = app == 0;
	*refused = false;
	return 0;
}

/* Opens path; create is only for a file that does not exist yet. *refused
 * (may be NULL) tells a refused file from a failure to open at all. */
static struct state *open_file(const char *path, bool reader, bool *refused, struct df_err *err)
{
	static bool configured;
	struct state *st = xcalloc(1, sizeof(*st));
	char *wal = xasprintf("%s-wal", path);
	struct stat sb, wb;
	bool exists, legacy = false, no = false;
	const char *check = NULL;
	int flags = reader ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;

	/* dfreconcile has one thread: SQLite's mutexes and allocation counters
	 * cost a tenth of a first sync's instructions for nothing. Settable
	 * only before SQLite starts; a refusal leaves the defaults. */
	if (!configured) {
		sqlite3_config(SQLITE_CONFIG_SINGLETHREAD);
		sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
		configured = true;
	}
	refused = refused ? refused : &no;
	*refused = false;
	exists = stat(path, &sb) == 0;
	if (exists && sb.st_size == 0 && !(stat(wal, &wb) == 0 && wb.st_size > 0)) {
		free(wal);
		free(st);
		*refused = true;
		refuse(err, path, "is empty (zero bytes)");
		return NULL;
	}
	free(wal);
	if (exists)
		check = check_needed(path, &sb, &st->checked_s);
	else
		st->checked_s = time(NULL);     /* a new file is sound */
	if (!exists && !reader)
		flags |= SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
		df_fail(err, DF_FAIL_STATE, "state: cannot open %s: %s", path,
			st->db ? sqlite3_errmsg(st->db) : "out of memory");
		state_close(st);
		return NULL;
	}
	sqlite3_busy_timeout(st->db, 5000);
	if (exists && identify(st, path, check, &legacy, refused, err)) {
		state_close(st);
		return NULL;
	}
	if (exists && check)
		st->checked_s = time(NULL);
	st->check_why = exists ? check : "a new file";
	if (!reader && exists) {
		/* Files made 0644 by earlier versions; only then: a chmod
		 * moves the change time, which the check record compares. */
		if ((sb.st_mode & 0777) != (S_IRUSR | S_IWUSR))
			(void)chmod(path, S_IRUSR | S_IWUSR);
	}
	if (reader) {
		/* A reader (report, explain) changes nothing, not even the schema. */
		long long v = -1;
		if (pragma_int(st, "PRAGMA user_version", &v) == 0 && v != SCHEMA_VERSION)
			df_fail(err, DF_FAIL_STATE, "state: schema version %lld, this dfreconcile reads %d: "
				"let a run migrate the file first", v, SCHEMA_VERSION);
		if (v == SCHEMA_VERSION)
			return st;
	} else if ((exists && !legacy) || exec(st, "PRAGMA application_id = " STR(STATE_APPLICATION_ID), err) == 0) {
		/* cache_size: 8 MiB of pages, not SQLite's 2: past about 100,000
		 * contacts the index pages a record's lookups touch no longer
		 * fit in 2 MiB, and each miss is a read system call. 8 MiB keeps
		 * the peak RSS well under issue 9's 32 MB. */
		if (exec(st, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; "
			 "PRAGMA cache_size = -8192", err) == 0 && migrate(st, err) == 0) {
			st->path = xstrdup(path);
			st->writer = true;
			return st;
		}
	}
	df_wrap(err, "%s", path);
	state_close(st);
	return NULL;
}

struct state *state_open(const char *path, struct df_err *err)
{
	return open_file(path, false, NULL, err);
}

struct state *state_open_reader(const char *path, struct df_err *err)
{
	return open_file(path, true, NULL, err);
}

/* Moves path and its -wal and -shm files to path.refused-<UTC time>; the
 * check record, which describes the file no longer there, is removed. */
static int move_aside(const char *path, char **aside, struct df_err *err)
{
	static const char *const tails[] = { "-wal", "-shm" };
	char *record = check_path(path);
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	*aside = xasprintf("%s.refused-%s", path, stamp);
	if (access(*aside, F_OK) == 0 || rename(path, *aside) != 0) {
		df_fail(err, DF_FAIL_STATE, "state: cannot move %s to %s: %s", path, *aside,
			errno ? strerror(errno) : "the name is taken");
		free(*aside);
		*aside = NULL;
		free(record);
		return -1;
	}
	(void)unlink(record);
	free(record);
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		char *from = xasprintf("%s%s", path, tails[i]), *to = xasprintf("%s%s", *aside, tails[i]);
		if (rename(from, to) != 0 && errno != ENOENT)
			df_fail(err, DF_FAIL_STATE, "state: cannot move %s to %s: %s", from, to, strerror(errno));
		free(from);
		free(to);
		if (err && err->fail != DF_OK)
			return -1;
	}
	return 0;
}

int state_init(const char *path, char **aside, struct df_err *err)
{
	struct df_err why = { 0 };
	struct state *st;
	bool refused = false;

	*aside = NULL;
	errno = 0;
	if (access(path, F_OK) == 0) {
		st = open_file(path, true, &refused, &why);
		if (st != NULL || !refused) {
			state_close(st);
			return st ? df_fail(err, DF_FAIL_STATE, "state file %s is usable: init-state never "
					    "replaces a usable state (move it away yourself to start over)", path)
				  : df_fail(err, why.fail, "%s", why.msg);
		}
		if (move_aside(path, aside, err))
			return -1;
	}
	st = state_open(path, err);
	state_close(st);
	return st ? 0 : -1;
}

void state_close(struct state *st)
{
	if (st == NULL)
		return;
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	/* The last connection's close checkpoints the log into the file and
	 * removes it: only then is the file what the next open compares. */
	if (sqlite3_close(st->db) == SQLITE_OK && st->writer && !st->failed)
		check_record_write(st->path, st->checked_s);
	wording_forget(st);
	free(st->path);
	free(st);
}

const char *state_checked(const struct state *st, long long *checked_s)
{
	*checked_s = st->checked_s;
	return st->check_why;
}

int state_schema_version(struct state *st)
{
	int v = -1;

	user_version(st, &v, NULL);
	return v;
}

int state_begin(struct state *st, struct df_err *err)
{
	if (write_stmt(st, S_SAVEPOINT, err, "begin", ""))
		return -1;
	st->depth++;
	return 0;
}

int state_commit(struct state *st, struct df_err *err)
{
	if (write_stmt(st, S_RELEASE, err, "commit", ""))
		return -1;
	st->depth--;
	return 0;
}

int state_rollback(struct state *st)
{
	if (st->depth == 0)
		return 0;
	/* Releasing the outermost savepoint would commit an (empty)
	 * transaction and touch the file header; a dry run must not. */
	exec(st, st->depth == 1 ? "ROLLBACK" : "ROLLBACK TO work; RELEASE work", NULL);
	st->depth--;
	wording_forget(st);
	return 0;
}

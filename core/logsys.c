/*
 * logsys.c - the syslog(3) end of the event log. Kept apart from log.c
 * because <syslog.h> defines LOG_INFO and LOG_DEBUG as macros, which would
 * replace our own log levels of the same names.
 */
#include <syslog.h>

#include "logsys.h"

void logsys_open(void)
{
	openlog("dfreconcile", LOG_PID, LOG_DAEMON);
}

void logsys_write(int level, const char *line)
{
	static const int priority[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

	syslog(priority[level >= 0 && level <= 3 ? level : 3], "%s", line);
}

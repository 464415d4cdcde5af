/* logsys.h - syslog(3) for log.c: facility daemon, ident dfreconcile. */
#ifndef DF_LOGSYS_H
#define DF_LOGSYS_H

void logsys_open(void);
/* level: 0 error, 1 warn, 2 info, 3 debug (enum log_level's order). */
void logsys_write(int level, const char *line);

#endif

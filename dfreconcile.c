/*
 * dfreconcile.c - the command line: parse, load the configuration, hand
 * over to the engine or the report. Nothing below main() exits; every
 * failure comes back here as an exit code (man/dfreconcile.1).
 */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/lock.h"
#include "core/log.h"
#include "core/normalize.h"
#include "core/str.h"
#include "engine/engine.h"
#include "report/report.h"

#define DEFAULT_CONFIG "/etc/dfreconcile/dfreconcile.conf"

static const char usage[] =
	"usage: dfreconcile [-c FILE] [-v|-q] [--log-format text|json] [COMMAND [OPTIONS]]\n"
	"\n"
	"Reconciles GoHighLevel, Aloware, Verity and the texting system: contacts\n"
	"both ways, Aloware calls and texts into GHL, GHL tags to Aloware call\n"
	"lists, and opt-outs (STOP, DND, DNC) to every system.\n"
	"\n"
	"commands:\n"
	"  run [--full] [--dry-run] [--max-change-share X] [--metrics FILE]\n"
	"                     poll every system, merge, write corrections (default)\n"
	"      --full         ignore the cursors and re-read every record\n"
	"      --dry-run      print the exact plan; send nothing, change no state\n"
	"      --max-change-share X\n"
	"                     allow this run to take in changes of up to X (0..1)\n"
	"                     of a system's records: changed, cleared or gone\n"
	"                     (overrides safety.max_change_share)\n"
	"      --metrics FILE write a Prometheus textfile after the run, whatever\n"
	"                     its exit status (overrides metrics_file)\n"
	"  report [--last | --run N[..M] | --since TIME] [--format text|json|csv|html]\n"
	"         [--system S] [--person N] [--section S] [--limit N]\n"
	"                     what runs saw, decided and wrote (default: --last):\n"
	"                     a summary per system and the problems first, then\n"
	"                     the details; --section changes, conflicts, writes,\n"
	"                     opt-outs, deliveries, quarantine or notices (csv\n"
	"                     needs one); html is one self-contained page\n"
	"  status [--format text|json]\n"
	"                     age of each system's and stream's data, writes\n"
	"                     waiting (all runs), quarantine, held records, admin\n"
	"                     actions\n"
	"  explain [--format text|json] PHONE|EMAIL|PERSON\n"
	"                     why a person's values are what they are: each\n"
	"                     field's agreed value, every system's side, rule,\n"
	"                     reason, conflict history (a person is a number of\n"
	"                     up to 9 digits; unknown: exit 7)\n"
	"  retry [SYSTEM[:ID]]\n"
	"                     make writes and deliveries that were given up or\n"
	"                     refused due again (all, one system's, or those of\n"
	"                     one record of SYSTEM and its person)\n"
	"  link SYSTEM:ID PERSON\n"
	"                     link a record (for example one held for an ambiguous\n"
	"                     phone or email) to a person; the next run merges it\n"
	"  unlink SYSTEM:ID   undo a record's link; it stays held, not linked again\n"
	"                     through its phone or email until linked by an admin\n"
	"  pin PERSON FIELD VALUE\n"
	"                     hold a value against every system: the next runs\n"
	"                     write it wherever a system differs (not opt-outs)\n"
	"  unpin PERSON FIELD the field follows its merge rule again\n"
	"  undo --run N [--yes]\n"
	"                     put back every value run N changed (not opt-outs):\n"
	"                     print the plan like a dry run; send it with --yes\n"
	"  check-config       validate the configuration; touch nothing\n"
	"  init-state         create the state file; one that was refused (empty,\n"
	"                     damaged or not dfreconcile's) is first renamed to\n"
	"                     STATE.refused-TIME; a usable one is never replaced\n"
	"\n"
	"options:\n"
	"  -c, --config FILE  configuration (default $DFRECONCILE_CONFIG or\n"
	"                     " DEFAULT_CONFIG ")\n"
	"  -v, --verbose      log every request (debug level)\n"
	"  -q, --quiet        log warnings and errors only\n"
	"      --log-format text|json\n"
	"                     log lines as key=value text (default) or one JSON\n"
	"                     object per line (overrides log_format)\n"
	"  -h, --help         this text\n"
	"  -V, --version      the version\n"
	"\n"
	"exit status: 0 ok (a quarantine already reported and unchanged stays 0),\n"
	"1 partial: needs attention (see the report), 2 usage or configuration\n"
	"error, 3 another run holds the lock, 4 safety valve, 5 fatal error,\n"
	"6 a system refused the credentials (401/403), 7 explain: no such person.\n";

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "dfreconcile: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'dfreconcile --help'.\n");
	return EXIT_USAGE;
}

static int cmd_run(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "full", no_argument, NULL, 'f' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "max-change-share", required_argument, NULL, 'm' },
		{ "metrics", required_argument, NULL, 'M' },
		{ NULL, 0, NULL, 0 },
	};
	struct run_options ro = { .max_change_share = -1 };
	char *end;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'f': ro.full = true; break;
		case 'n': ro.dry_run = true; break;
		case 'M':
			if (*optarg == '\0')
				return usage_error("%s", "--metrics takes a file name");
			ro.metrics_file = optarg;
			break;
		case 'm':
			ro.max_change_share = strtod(optarg, &end);
			if (*end || end == optarg || !(ro.max_change_share >= 0 && ro.max_change_share <= 1))
				return usage_error("--max-change-share takes a number from 0 to 1, not \"%s\"", optarg);
			break;
		default: return usage_error("%s", "unknown option to run");
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);
	return engine_run(cfg, &ro);
}

/* --run N or N..M: the first and last run (0 for "the last run"). */
static int parse_runs(const char *arg, long long *from, long long *to)
{
	char *end;

	*from = strtoll(arg, &end, 10);
	if (end == arg || *from <= 0)
		return -1;
	if (*end == '\0') {
		*to = *from;
		return 0;
	}
	if (strncmp(end, "..", 2) != 0)
		return -1;
	arg = end + 2;
	*to = strtoll(arg, &end, 10);
	return end == arg || *end || *to < *from ? -1 : 0;
}

static int cmd_report(const struct config *cfg, int argc, char **argv, bool status)
{
	static const struct option opts[] = {
		{ "last", no_argument, NULL, 'l' },
		{ "run", required_argument, NULL, 'r' },
		{ "since", required_argument, NULL, 'S' },
		{ "format", required_argument, NULL, 'f' },
		{ "system", required_argument, NULL, 's' },
		{ "person", required_argument, NULL, 'p' },
		{ "section", required_argument, NULL, 'x' },
		{ "limit", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const formats[] = { [REPORT_TEXT] = "text", [REPORT_JSON] = "json",
						[REPORT_CSV] = "csv", [REPORT_HTML] = "html" };
	struct report_filter f = { 0 };
	enum report_format fmt = REPORT_TEXT;
	struct df_err err = { 0 };
	const char *since = NULL;
	struct state *st;
	char *end;
	int c, rc;
	bool found;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (status && c != 'f')
			return usage_error("%s", "status takes --format text|json");
		switch (c) {
		case 'l': f.run_from = f.run_to = 0; since = NULL; break;
		case 'r':
			if (parse_runs(optarg, &f.run_from, &f.run_to))
				return usage_error("--run takes a run number or N..M, not \"%s\"", optarg);
			break;
		case 'S': since = optarg; break;
		case 'f':
			found = false;
			for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
				if (strcmp(optarg, formats[i]) == 0) {
					fmt = (enum report_format)i;
					found = true;
				}
			if (!found)
				return usage_error("--format is text, json, csv or html, not \"%s\"", optarg);
			break;
		case 's': f.system = optarg; break;
		case 'p':
			f.person = strtoll(optarg, &end, 10);
			if (*end || f.person <= 0)
				return usage_error("--person takes a person number, not \"%s\"", optarg);
			break;
		case 'x':
			if (!report_section_known(optarg))
				return usage_error("--section is changes, conflicts, writes, opt-outs, deliveries, "
						   "quarantine or notices, not \"%s\"", optarg);
			f.section = optarg;
			break;
		case 'n':
			f.limit = strtol(optarg, &end, 10);
			if (*end || f.limit <= 0)
				return usage_error("--limit takes a positive number, not \"%s\"", optarg);
			break;
		default: return usage_error("%s", "unknown option to report");
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);
	if (fmt == REPORT_CSV && f.section == NULL)
		return usage_error("%s", "--format csv needs --section (one table per file)");
	st = state_open_reader(cfg->state_path, &err);
	if (st == NULL) {
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		return EXIT_FATAL;
	}
	if (status) {
		rc = report_status(st, fmt, stdout, &err);
	} else {
		long long last = state_last_run(st);
		rc = 0;
		if (since && (rc = report_first_run_since(st, since, &f.run_from, &err)) == 0) {
			f.run_to = last;
			if (f.run_from == 0)
				rc = df_fail(&err, DF_FAIL_STATE, "no run started at or after %s", since);
		}
		if (rc == 0 && f.run_to == 0)
			f.run_from = f.run_to = last;
		if (rc == 0)
			rc = last == 0 ? df_fail(&err, DF_FAIL_STATE, "no run has been recorded yet")
				       : report_print(st, &f, fmt, stdout, &err);
	}
	state_close(st);
	if (rc) {
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		return EXIT_FATAL;
	}
	return EXIT_OK;
}

/* The persons a phone, an email or a person number names. */
static int resolve_person(const struct config *cfg, struct state *st, const char *arg,
			  long long *ids, int max, int *n, struct df_err *err)
{
	size_t len = strlen(arg);
	char *key;
	int rc;

	if (len > 0 && len <= 9 && strspn(arg, "0123456789") == len) {
		ids[0] = strtoll(arg, NULL, 10);
		*n = 1;
		return 0;
	}
	key = strchr(arg, '@') ? email_normalize(arg) : phone_to_e164(arg, cfg->default_country);
	if (key == NULL)
		/* What was typed is wrong (a usage error), not unknown. */
		return df_fail(err, DF_FAIL_CONFIG, "\"%s\" is not a phone, an email or a person number", arg);
	rc = state_match(st, strchr(arg, '@') ? "email" : "phone", key, ids, max, n, err);
	if (rc == 0 && *n == 0)
		rc = df_fail(err, DF_FAIL_INPUT, "no person has %s", key);
	free(key);
	return rc;
}

static int cmd_explain(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	enum report_format fmt = REPORT_TEXT;
	struct df_err err = { 0 };
	long long ids[8];
	struct state *st;
	int c, n = 0, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'f' && strcmp(optarg, "json") == 0)
			fmt = REPORT_JSON;
		else if (!(c == 'f' && strcmp(optarg, "text") == 0))
			return usage_error("%s", "explain takes --format text|json");
	}
	if (optind + 1 != argc)
		return usage_error("%s", "explain takes one phone, email or person number");
	st = state_open_reader(cfg->state_path, &err);
	if (st == NULL) {
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		return EXIT_FATAL;
	}
	rc = resolve_person(cfg, st, argv[optind], ids, 8, &n, &err);
	for (int i = 0; i < n && rc == 0; i++)
		rc = report_explain(st, ids[i], fmt, stdout, &err);
	state_close(st);
	if (rc) {
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		/* Unknown (DF_FAIL_INPUT) has its own status, so a script can
		 * tell "no such person" from a broken state file. */
		return err.fail == DF_FAIL_INPUT ? EXIT_NOT_FOUND : err.fail == DF_FAIL_CONFIG ? EXIT_USAGE
											: EXIT_FATAL;
	}
	return EXIT_OK;
}

/* link SYSTEM:ID PERSON, unlink SYSTEM:ID: argv[0] is the command. */
static int cmd_link(const struct config *cfg, int argc, char **argv, bool unlink)
{
	int want = unlink ? 2 : 3;

	if (argc != want)
		return usage_error("%s", unlink ? "unlink takes SYSTEM:ID" : "link takes SYSTEM:ID PERSON");
	return link_admin(cfg, argv[1], unlink ? NULL : argv[2], unlink);
}

/* pin PERSON FIELD VALUE, unpin PERSON FIELD: argv[0] is the command. */
static int cmd_pin(const struct config *cfg, int argc, char **argv, bool unpin)
{
	if (argc != (unpin ? 3 : 4))
		return usage_error("%s", unpin ? "unpin takes PERSON FIELD" : "pin takes PERSON FIELD VALUE");
	return unpin ? admin_unpin(cfg, argv[1], argv[2]) : admin_pin(cfg, argv[1], argv[2], argv[3]);
}

/* undo --run N [--yes] */
static int cmd_undo(const struct config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "run", required_argument, NULL, 'r' },
		{ "yes", no_argument, NULL, 'y' },
		{ NULL, 0, NULL, 0 },
	};
	long long run = 0;
	bool yes = false;
	char *end;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			run = strtoll(optarg, &end, 10);
			if (*end || run <= 0)
				return usage_error("--run takes a run number, not \"%s\"", optarg);
			break;
		case 'y': yes = true; break;
		default: return usage_error("%s", "undo takes --run N [--yes]");
		}
	}
	if (optind < argc || run == 0)
		return usage_error("%s", "undo takes --run N [--yes]");
	return admin_undo(cfg, run, yes);
}

/* init-state: the admin's explicit way past a refused state file. */
static int cmd_init_state(const struct config *cfg, int argc)
{
	struct df_err err = { 0 };
	char *aside = NULL;
	int lock, rc;

	if (argc > 1)
		return usage_error("%s", "init-state takes no arguments");
	lock = lock_take(cfg->lock_path, &err);
	if (lock < 0) {
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		return err.fail == DF_FAIL_TEMP ? EXIT_LOCKED : EXIT_FATAL;
	}
	rc = state_init(cfg->state_path, &aside, &err);
	lock_release(lock);
	if (rc) {
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		return EXIT_FATAL;
	}
	if (aside)
		printf("moved the refused state file to %s\n", aside);
	printf("created a new state file %s\n", cfg->state_path);
	free(aside);
	return EXIT_OK;
}

/* retry [SYSTEM[:ID]]: given-up and refused writes and deliveries are due
 * again at the next run, with fresh attempts (I11). Takes the run lock, so
 * it never races a run. */
static int cmd_retry(const struct config *cfg, int argc, char **argv)
{
	struct df_err err = { 0 };
	char *system = NULL, *id = NULL;
	long long writes = 0, deliveries = 0;
	struct state *st;
	int lock, rc;

	if (argc > 2)
		return usage_error("%s", "retry takes at most one SYSTEM or SYSTEM:ID");
	if (argc == 2) {
		system = xstrdup(argv[1]);
		if ((id = strchr(system, ':')) != NULL)
			*id++ = '\0';
		if (config_system(cfg, system) < 0 || (id && *id == '\0')) {
			rc = usage_error("retry: \"%s\" is not a configured SYSTEM or SYSTEM:ID", argv[1]);
			free(system);
			return rc;
		}
	}
	lock = lock_take(cfg->lock_path, &err);
	if (lock < 0) {
		free(system);
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		return err.fail == DF_FAIL_TEMP ? EXIT_LOCKED : EXIT_FATAL;
	}
	st = state_open(cfg->state_path, &err);
	rc = st == NULL ? -1 : state_retry(st, system, id, &writes, &deliveries, &err);
	state_close(st);
	lock_release(lock);
	free(system);
	if (rc) {
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		return EXIT_FATAL;
	}
	printf("%lld write%s and %lld deliver%s are due again\n", writes, writes == 1 ? "" : "s",
	       deliveries, deliveries == 1 ? "y" : "ies");
	return EXIT_OK;
}

/* Before any token is read: no core file and no ptrace-style reading of
 * this process by other users (a dump would hold the tokens, I9), and
 * every file we create (state, WAL, SHM, lock) is private to the owner. */
static void protect_process(void)
{
	struct rlimit none = { 0, 0 };

	(void)setrlimit(RLIMIT_CORE, &none);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	umask(077);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "log-format", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = getenv("DFRECONCILE_CONFIG"), *cmd = "run";
	struct df_err err = { 0 };
	struct config *cfg;
	int c, level = -1, rc;
	enum log_format log_format = LOG_TEXT;
	bool log_format_set = false;
	/* The loader knows each kind of system through its connector's table. */
	config_set_kinds(connector_kinds());

	protect_process();
	if (path == NULL || *path == '\0')
		path = DEFAULT_CONFIG;
	while ((c = getopt_long(argc, argv, "+c:vqhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'v': level = LOG_DEBUG; break;
		case 'q': level = LOG_WARN; break;
		case 'L':
			if (log_parse_format(optarg, &log_format))
				return usage_error("--log-format must be text or json, not \"%s\"", optarg);
			log_format_set = true;
			/* Also for what goes wrong before the config is read. */
			log_set_output(LOG_TO_STDERR, log_format);
			break;
		case 'h': fputs(usage, stdout); return EXIT_OK;
		case 'V': printf("dfreconcile %s\n", DF_VERSION); return EXIT_OK;
		default: fputs("Try 'dfreconcile --help'.\n", stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		cmd = argv[optind++];
	argc -= optind - 1;
	argv += optind - 1;
	if (strcmp(cmd, "run") && strcmp(cmd, "report") && strcmp(cmd, "status") &&
	    strcmp(cmd, "check-config") && strcmp(cmd, "explain") && strcmp(cmd, "init-state") &&
	    strcmp(cmd, "retry") && strcmp(cmd, "link") && strcmp(cmd, "unlink") && strcmp(cmd, "pin") &&
	    strcmp(cmd, "unpin") && strcmp(cmd, "undo"))
		return usage_error("unknown command \"%s\"", cmd);

	/* Only a run (and undo, which runs) talks to the systems and needs
	 * their tokens. */
	cfg = strcmp(cmd, "run") == 0 || strcmp(cmd, "check-config") == 0 || strcmp(cmd, "undo") == 0
		      ? config_load(path, &err)
									    : config_load_public(path, &err);
	if (cfg == NULL) {
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (level >= 0)
		log_set_level((enum log_level)level);
	if (log_format_set)
		log_set_output(cfg->log_target, log_format);
	if (strcmp(cmd, "check-config") == 0) {
		config_print(cfg);
		printf("configuration ok\n");
		rc = EXIT_OK;
	} else if (strcmp(cmd, "run") == 0) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = cmd_run(cfg, argc, argv);
		curl_global_cleanup();
	} else if (strcmp(cmd, "init-state") == 0) {
		rc = cmd_init_state(cfg, argc);
	} else if (strcmp(cmd, "explain") == 0) {
		rc = cmd_explain(cfg, argc, argv);
	} else if (strcmp(cmd, "retry") == 0) {
		rc = cmd_retry(cfg, argc, argv);
	} else if (strcmp(cmd, "pin") == 0 || strcmp(cmd, "unpin") == 0) {
		rc = cmd_pin(cfg, argc, argv, strcmp(cmd, "unpin") == 0);
	} else if (strcmp(cmd, "undo") == 0) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = cmd_undo(cfg, argc, argv);
		curl_global_cleanup();
	} else if (strcmp(cmd, "link") == 0 || strcmp(cmd, "unlink") == 0) {
		rc = cmd_link(cfg, argc, argv, strcmp(cmd, "unlink") == 0);
	} else {
		rc = cmd_report(cfg, argc, argv, strcmp(cmd, "status") == 0);
	}
	config_free(cfg);
	return rc;
}

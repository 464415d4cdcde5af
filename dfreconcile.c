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

#include "core/config.h"
#include "core/log.h"
#include "core/normalize.h"
#include "engine/engine.h"
#include "report/report.h"

#define DEFAULT_CONFIG "/etc/dfreconcile/dfreconcile.conf"

static const char usage[] =
	"usage: dfreconcile [-c FILE] [-v|-q] [COMMAND [OPTIONS]]\n"
	"\n"
	"Reconciles GoHighLevel, Aloware, Verity and the texting system: contacts\n"
	"both ways, Aloware calls and texts into GHL, GHL tags to Aloware call\n"
	"lists, and opt-outs (STOP, DND, DNC) to every system.\n"
	"\n"
	"commands:\n"
	"  run [--full] [--dry-run] [--max-change-share X]\n"
	"                     poll every system, merge, write corrections (default)\n"
	"      --full         ignore the cursors and re-read every record\n"
	"      --dry-run      print the exact plan; send nothing, change no state\n"
	"      --max-change-share X\n"
	"                     allow this run to take in changes of up to X (0..1)\n"
	"                     of a system's records: changed, cleared or gone\n"
	"                     (overrides safety.max_change_share)\n"
	"  report [--last | --run N] [--format text|json]\n"
	"                     what a run saw, decided and wrote (default: --last)\n"
	"  status             cursors, recent runs, writes waiting\n"
	"  explain [--format text|json] PHONE|EMAIL|PERSON\n"
	"                     why a person's values are what they are (a person\n"
	"                     is a number of up to 9 digits)\n"
	"  check-config       validate the configuration; touch nothing\n"
	"\n"
	"options:\n"
	"  -c, --config FILE  configuration (default $DFRECONCILE_CONFIG or\n"
	"                     " DEFAULT_CONFIG ")\n"
	"  -v, --verbose      log every request (debug level)\n"
	"  -q, --quiet        log warnings and errors only\n"
	"  -h, --help         this text\n"
	"  -V, --version      the version\n"
	"\n"
	"exit status: 0 ok, 1 partial (see the report), 2 usage or configuration\n"
	"error, 3 another run holds the lock, 4 safety valve, 5 fatal error.\n";

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

static int cmd_report(const struct config *cfg, int argc, char **argv, bool status)
{
	static const struct option opts[] = {
		{ "last", no_argument, NULL, 'l' },
		{ "run", required_argument, NULL, 'r' },
		{ "format", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	enum report_format fmt = REPORT_TEXT;
	struct df_err err = { 0 };
	long long run = 0;
	struct state *st;
	char *end;
	int c, rc;

	optind = 1;
	while (!status && (c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'l': run = 0; break;
		case 'r':
			run = strtoll(optarg, &end, 10);
			if (*end || run <= 0)
				return usage_error("--run takes a run number, not \"%s\"", optarg);
			break;
		case 'f':
			if (strcmp(optarg, "text") == 0)
				fmt = REPORT_TEXT;
			else if (strcmp(optarg, "json") == 0)
				fmt = REPORT_JSON;
			else
				return usage_error("--format is text or json, not \"%s\"", optarg);
			break;
		default: return usage_error("%s", "unknown option to report");
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument \"%s\"", argv[optind]);
	st = state_open_reader(cfg->state_path, &err);
	if (st == NULL) {
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		return EXIT_FATAL;
	}
	if (status) {
		rc = report_status(st, stdout, &err);
	} else {
		if (run == 0)
			run = state_last_run(st);
		rc = run == 0 ? df_fail(&err, DF_FAIL_STATE, "no run has been recorded yet")
			      : report_print(st, run, fmt, stdout, &err);
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
		return df_fail(err, DF_FAIL_INPUT, "\"%s\" is not a phone, an email or a person number", arg);
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
		return err.fail == DF_FAIL_INPUT ? EXIT_USAGE : EXIT_FATAL;
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = getenv("DFRECONCILE_CONFIG"), *cmd = "run";
	struct df_err err = { 0 };
	struct config *cfg;
	int c, level = -1, rc;

	if (path == NULL || *path == '\0')
		path = DEFAULT_CONFIG;
	while ((c = getopt_long(argc, argv, "+c:vqhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'v': level = LOG_DEBUG; break;
		case 'q': level = LOG_WARN; break;
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
	    strcmp(cmd, "check-config") && strcmp(cmd, "explain"))
		return usage_error("unknown command \"%s\"", cmd);

	/* Only a run talks to the systems and needs their tokens. */
	cfg = strcmp(cmd, "run") == 0 || strcmp(cmd, "check-config") == 0 ? config_load(path, &err)
									    : config_load_public(path, &err);
	if (cfg == NULL) {
		fprintf(stderr, "dfreconcile: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (level >= 0)
		log_set_level((enum log_level)level);
	if (strcmp(cmd, "check-config") == 0) {
		config_print(cfg);
		printf("configuration ok\n");
		rc = EXIT_OK;
	} else if (strcmp(cmd, "run") == 0) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = cmd_run(cfg, argc, argv);
		curl_global_cleanup();
	} else if (strcmp(cmd, "explain") == 0) {
		rc = cmd_explain(cfg, argc, argv);
	} else {
		rc = cmd_report(cfg, argc, argv, strcmp(cmd, "status") == 0);
	}
	config_free(cfg);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * cuvisor: the command-line tool. Table-driven subcommands, each with
 * --help; option parsing and the daemon connection helpers live here.
 */
#include "cli.h"

#include <errno.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/util.h"

static const struct cv_cli_cmd *const commands[] = {
	&cv_cli_cmd_run, &cv_cli_cmd_ps, &cv_cli_cmd_info,
	&cv_cli_cmd_suspend, &cv_cli_cmd_resume, &cv_cli_cmd_evict,
	&cv_cli_cmd_checkpoint, &cv_cli_cmd_restore, &cv_cli_cmd_migrate,
	&cv_cli_cmd_peer, &cv_cli_cmd_shutdown,
};

/*
 * Prints text word-wrapped to 79 columns, the cursor being at column col;
 * continuation lines start at column indent. "\n" in text starts a new
 * paragraph at column indent.
 */
static void wrap(const char *s, int col, int indent)
{
	int n;

	while (*s) {
		if (*s == '\n') {
			printf("\n%*s", indent, "");
			col = indent;
			s++;
			continue;
		}
		n = (int)strcspn(s, " \n");
		if (col > indent && col + 1 + n > 79) {
			printf("\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			putchar(' ');
			col++;
		}
		printf("%.*s", n, s);
		col += n;
		s += n;
		while (*s == ' ')
			s++;
	}
	putchar('\n');
}

void cv_cli_help(const struct cv_cli_cmd *cmd)
{
	char left[40];
	size_t i;

	printf("Usage: cuvisor %s [OPTION...]%s%s\n\n", cmd->name,
	       cmd->args ? " " : "", cmd->args ? cmd->args : "");
	wrap(cmd->summary, 0, 0);
	if (cmd->details) {
		putchar('\n');
		wrap(cmd->details, 0, 0);
	}
	printf("\nOptions:\n");
	for (i = 0; i < cmd->nopts; i++) {
		snprintf(left, sizeof(left), "%s%s%s", cmd->opts[i].name,
			 cmd->opts[i].arg ? " " : "",
			 cmd->opts[i].arg ? cmd->opts[i].arg : "");
		printf("  %-20s ", left);
		wrap(cmd->opts[i].help, 23, 23);
	}
	printf("  %-20s show this help\n", "--help");
}

static const struct cv_cli_opt *find(const struct cv_cli_cmd *cmd,
				     const char *arg, const char **val)
{
	size_t i, n;

	for (i = 0; i < cmd->nopts; i++) {
		n = strlen(cmd->opts[i].name);
		if (strncmp(arg, cmd->opts[i].name, n))
			continue;
		if (!arg[n]) {
			*val = NULL;
			return &cmd->opts[i];
		}
		if (arg[n] == '=' && cmd->opts[i].arg) {
			*val = arg + n + 1;
			return &cmd->opts[i];
		}
	}
	return NULL;
}

int cv_cli_set_socket(void *ctx, const char *v)
{
	*(const char **)ctx = v;
	return 0;
}

int cv_cli_parse(const struct cv_cli_cmd *cmd, void *ctx, int argc,
		 char **argv, bool stop_at_arg)
{
	const struct cv_cli_opt *o;
	const char *val;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return i + 1;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			cv_cli_help(cmd);
			return 0;
		}
		if (argv[i][0] != '-' || !argv[i][1]) {
			if (stop_at_arg)
				return i;
			fprintf(stderr, "cuvisor %s: unexpected argument '%s'; "
				"see --help\n", cmd->name, argv[i]);
			return -1;
		}
		o = find(cmd, argv[i], &val);
		if (!o) {
			fprintf(stderr, "cuvisor %s: unknown option '%s'; see "
				"--help\n", cmd->name, argv[i]);
			return -1;
		}
		if (o->arg && !val) {
			if (i + 1 == argc) {
				fprintf(stderr, "cuvisor %s: %s needs a value "
					"(%s)\n", cmd->name, o->name, o->arg);
				return -1;
			}
			val = argv[++i];
		}
		if (o->set(ctx, val) < 0)
			return -1;
	}
	return argc;
}

/* Whether the last cv_cli_socket() path was named by the operator
 * (--socket or CUVISOR_SOCKET): only such a path may trust a daemon of
 * another uid (CUVISOR_DAEMON_UID; core/ctl.h). One command per process,
 * so one path. */
static bool g_socket_named;

int cv_cli_socket(const char *opt, char *buf, size_t size)
{
	const char *env = getenv("CUVISOR_SOCKET");

	g_socket_named = opt || (env && *env);
	if (!opt)
		return cv_ctl_default_path(buf, size);
	if (strlen(opt) >= size || strlen(opt) >= 108)
		return -ENAMETOOLONG;
	memcpy(buf, opt, strlen(opt) + 1);
	return 0;
}

/* A refused daemon: why, and who the uid is. */
static void print_refusal(const struct cv_ctl_trust *t)
{
	struct passwd *pw;

	fprintf(stderr, "cuvisor: %s\n", t->why);
	if (t->owner == CV_CTL_UID_NONE)
		return;
	pw = getpwuid((uid_t)t->owner);
	fprintf(stderr, "cuvisor: uid %u is %s%s%s; to use a daemon of another "
		"user, name its socket (--socket or CUVISOR_SOCKET) and set "
		"CUVISOR_DAEMON_UID=%u\n", t->owner, pw ? "user '" : "no user",
		pw ? pw->pw_name : "", pw ? "'" : "", t->owner);
}

int cv_cli_connect(const char *path, bool quiet)
{
	struct cv_ctl_trust t = { .named = g_socket_named };
	int fd = cv_ctl_connect_daemon(path, &t);

	if (fd == -EPERM || fd == -EINVAL)
		print_refusal(&t);
	else if (fd < 0 && !quiet)
		fprintf(stderr, "cuvisor: no daemon at %s: %s; start cuvisord, "
			"or use `cuvisor run`\n", path, strerror(-fd));
	return fd;
}

int cv_cli_refused(int fd, int n, const struct cv_ctl_hdr *h, const void *p)
{
	char why[sizeof(struct cv_ctl_refused)];
	int r;

	if (n < 0)
		r = cv_ctl_refusal_after(fd, n, why, sizeof(why));
	else
		r = cv_ctl_refusal(h, p, n, CV_CTL_REFUSED, why, sizeof(why));
	if (r == 0 || r == n)
		return n;
	fprintf(stderr, "cuvisor: the daemon refused the connection: %s\n",
		why);
	return r;
}

int cv_cli_out_check(const char *cmd, const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		fprintf(stderr, "cuvisor %s: %s: %s\n", cmd, path,
			strerror(errno));
		return -errno;
	}
	if (S_ISLNK(st.st_mode)) {
		fprintf(stderr, "cuvisor %s: refusing %s: it is a symbolic link "
			"(owned by uid %u), which an output never follows; name "
			"the file it points to\n", cmd, path,
			(unsigned)st.st_uid);
		return -ELOOP;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "cuvisor %s: refusing %s: it is not a regular "
			"file (a device, fifo, socket or directory); outputs are "
			"written only to regular files\n", cmd, path);
		return -EINVAL;
	}
	return 0;
}

int cv_cli_call(int fd, uint16_t type, const void *p, uint32_t len, void *buf,
		uint32_t size, int timeout_ms)
{
	uint8_t small[sizeof(struct cv_ctl_refused)];
	void *into = size < sizeof(small) ? small : buf;
	struct cv_ctl_hdr h;
	int r;

	r = cv_ctl_send(fd, type, 0, p, len, NULL, 0);
	if (r == 0)
		r = cv_ctl_recv(fd, &h, into, size < sizeof(small) ?
				(uint32_t)sizeof(small) : size, NULL, NULL,
				timeout_ms);
	r = cv_cli_refused(fd, r, &h, into);
	if (r < 0)
		return r;
	if (into != buf) {
		if ((uint32_t)r > size)
			return -EMSGSIZE;
		memcpy(buf, small, (size_t)r);
	}
	if (h.type != (type | CV_CTL_REPLY))
		return -EBADMSG;
	if (h.status < 0)
		return h.status;
	return r;
}

int cv_cli_exe_dir(char *buf, size_t size)
{
	char exe[4096];
	ssize_t n;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -errno;
	exe[n] = 0;
	if ((size_t)snprintf(buf, size, "%s", dirname(exe)) >= size)
		return -ENAMETOOLONG;
	return 0;
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: cuvisor COMMAND [OPTION...] [ARG...]\n\n"
		"Runs CUDA programs on cuvisor virtual GPUs and manages the "
		"cuvisord daemon.\n\nCommands:\n");
	for (i = 0; i < CV_ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i]->name,
			commands[i]->summary);
	fprintf(f, "\n`cuvisor COMMAND --help` describes a command. Exit "
		"status: 0 ok, 1 error, 2 usage\n(`run` returns its "
		"program's status).\n");
}

int cv_cli_parse_id(const char *s, uint64_t *id)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end || errno || v == 0)
		return -EINVAL;
	*id = v;
	return 0;
}

int cv_cli_parse_gpu(const char *cmd, const char *s, int32_t *gpu)
{
	char *end;
	long g;

	errno = 0;
	g = strtol(s, &end, 10);
	if (!*s || *end || errno || g < 0 || g > 65535) {
		fprintf(stderr, "cuvisor %s: --gpu: '%s' is not a GPU index\n",
			cmd, s);
		return -EINVAL;
	}
	*gpu = (int32_t)g;
	return 0;
}

void cv_cli_fmt_bytes(uint64_t b, char *buf, size_t size)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB",
					    "PiB", "EiB" };
	double v = (double)b;
	int u = -1;

	if (b < 1024) {
		snprintf(buf, size, "%llu B", (unsigned long long)b);
		return;
	}
	while (v >= 1024 && u + 1 < (int)CV_ARRAY_SIZE(unit)) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, "%.1f %s", v, unit[u]);
}

int main(int argc, char **argv)
{
	const struct cv_cli_cmd *cmd = NULL;
	void *ctx;
	size_t i;
	int first, r;

	if (argc < 2) {
		usage(stderr);
		return CV_CLI_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		if (argc > 2)
			for (i = 0; i < CV_ARRAY_SIZE(commands); i++)
				if (!strcmp(argv[2], commands[i]->name))
					cmd = commands[i];
		if (cmd)
			cv_cli_help(cmd);
		else
			usage(stdout);
		return CV_CLI_EXIT_OK;
	}
	for (i = 0; i < CV_ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[1], commands[i]->name))
			cmd = commands[i];
	if (!cmd) {
		fprintf(stderr, "cuvisor: unknown command '%s'; see `cuvisor "
			"--help`\n", argv[1]);
		return CV_CLI_EXIT_USAGE;
	}
	ctx = calloc(1, cmd->ctx_size ? cmd->ctx_size : 1);
	if (!ctx) {
		fprintf(stderr, "cuvisor: out of memory\n");
		return CV_CLI_EXIT_ERR;
	}
	first = cv_cli_parse(cmd, ctx, argc - 1, argv + 1, cmd->stop_at_arg);
	if (first <= 0) {
		free(ctx);
		return first == 0 ? CV_CLI_EXIT_OK : CV_CLI_EXIT_USAGE;
	}
	/* Hand over the subcommand name and what follows the options. */
	argv[first] = argv[1];
	r = cmd->run(ctx, argc - first, argv + first);
	free(ctx);
	return r;
}

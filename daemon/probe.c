/* SPDX-License-Identifier: MIT */
/*
 * GPU inventory: run `WORKER --probe --backend B [--driver D]` once at
 * start and parse its stdout (cv_d_probe_parse). This runs before the
 * event loop, so it may block, but never longer than CV_D_PROBE_TIMEOUT_S.
 */
#include "cuvisord.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/log.h"

const char *cv_d_backend_name(int backend)
{
	switch (backend) {
	case CV_BACKEND_CUDA:
		return "cuda";
	case CV_BACKEND_HOST:
		return "host";
	default:
		return "auto";
	}
}

/* Reads the child's stdout until EOF, the size cap or the deadline. */
static int read_output(int fd, char *out, size_t cap, size_t *len)
{
	uint64_t deadline = cv_now_ns() + CV_D_PROBE_TIMEOUT_S * 1000000000ull;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t now;
	ssize_t n;
	int r;

	*len = 0;
	for (;;) {
		now = cv_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)((deadline - now) / 1000000 + 1));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		if (*len == cap)
			return -EFBIG;
		n = read(fd, out + *len, cap - *len);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -errno;
		if (n == 0)
			return 0;
		if (n > 0)
			*len += (size_t)n;
	}
}

static int wait_child(pid_t pid, const char *what)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st))
		cv_err("%s exited with status %d", what, WEXITSTATUS(st));
	else
		cv_err("%s killed by signal %d", what,
		       WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return -EIO;
}

/* Runs one probe; the number of GPUs found, or -errno (logged). */
static int probe_one(struct cv_d *d, int backend)
{
	const char *argv[8] = { d->cfg.worker, "--probe", "--backend",
				cv_d_backend_name(backend) };
	char *out = NULL, what[64];
	const char *why = "";
	int p[2] = { -1, -1 }, r, rw, argc = 4;
	size_t len = 0;
	pid_t pid;

	if (d->cfg.driver[0]) {
		argv[argc++] = "--driver";
		argv[argc++] = d->cfg.driver;
	}
	snprintf(what, sizeof(what), "probe (backend %s)",
		 cv_d_backend_name(backend));
	out = malloc(CV_D_PROBE_MAX);
	if (!out || pipe2(p, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		goto out;
	}
	if (pid == 0) {
		cv_d_child_reset();
		if (dup2(p[1], 1) < 0)
			_exit(127);
		execv(d->cfg.worker, (char *const *)argv);
		cv_err("cannot execute %s: %s", d->cfg.worker,
		       strerror(errno));
		_exit(127);
	}
	close(p[1]);
	p[1] = -1;
	r = read_output(p[0], out, CV_D_PROBE_MAX, &len);
	if (r < 0) {
		cv_err("%s: reading its output: %s", what, strerror(-r));
		kill(pid, SIGKILL);
	}
	rw = wait_child(pid, what);
	if (r < 0 || rw < 0) {
		r = r < 0 ? r : rw;
		goto out;
	}
	r = cv_d_probe_parse(out, len, d->gpus, CV_D_MAX_GPUS, &why);
	if (r < 0)
		cv_err("%s: %s", what, why);
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	free(out);
	return r;
}

static void log_inventory(struct cv_d *d)
{
	char sz[32];
	int i;

	for (i = 0; i < d->ngpus; i++)
		cv_info("gpu %d: %s, %s", d->gpus[i].index, d->gpus[i].name,
			cv_ctl_fmt_size(d->gpus[i].total, sz, sizeof(sz)));
}

int cv_d_probe(struct cv_d *d)
{
	int want = d->cfg.backend, n = -ENODEV;

	if (want == CV_BACKEND_CUDA && !d->cfg.driver[0]) {
		cv_err("backend cuda: no NVIDIA driver (libcuda.so.1) found; "
		       "pass --driver PATH");
		return -ENOENT;
	}
	if (want == 0 && !d->cfg.driver[0])
		cv_info("no NVIDIA driver (libcuda.so.1) found; using the host "
			"backend");
	if (want != CV_BACKEND_HOST && d->cfg.driver[0]) {
		n = probe_one(d, CV_BACKEND_CUDA);
		if (n > 0) {
			d->backend = CV_BACKEND_CUDA;
			goto found;
		}
		if (want == CV_BACKEND_CUDA) {
			cv_err("backend cuda: no usable GPU");
			return n < 0 ? n : -ENODEV;
		}
		cv_info("no GPU found by the cuda backend; using the host "
			"backend");
	}
	n = probe_one(d, CV_BACKEND_HOST);
	if (n <= 0) {
		cv_err("backend host: no device");
		return n < 0 ? n : -ENODEV;
	}
	d->backend = CV_BACKEND_HOST;
found:
	d->ngpus = n;
	log_inventory(d);
	return 0;
}

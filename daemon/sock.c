/* SPDX-License-Identifier: MIT */
/*
 * The listening socket and the pidfile.
 *
 * The socket's directory is created 0700 when missing; an existing one
 * must be a real directory owned by us and writable by nobody else, or we
 * refuse to start (someone else could swap the socket under our clients).
 * A leftover socket nobody answers on is replaced; a live one is not.
 */
#include "cuvisord.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../core/log.h"

/*
 * The socket's directory: created when missing, 0700, or 0755 when other
 * uids are allowed (they must reach the socket); never group or world
 * writable, and ours.
 */
static int check_dir(const char *sock_path, mode_t mode)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct stat st;
	char *dir;
	int r;

	snprintf(buf, sizeof(buf), "%s", sock_path);
	dir = dirname(buf);
	if (mkdir(dir, mode) == 0)
		cv_info("created socket directory %s (mode %04o)", dir,
			(unsigned)mode);
	else if (errno != EEXIST) {
		r = -errno;
		cv_err("cannot create socket directory %s: %s", dir,
		       strerror(-r));
		return r;
	}
	if (lstat(dir, &st) < 0) {
		r = -errno;
		cv_err("socket directory %s: %s", dir, strerror(-r));
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		cv_err("refusing socket directory %s: not a directory", dir);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid()) {
		cv_err("refusing socket directory %s: owned by uid %u, not us "
		       "(uid %u)", dir, (unsigned)st.st_uid,
		       (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_mode & 022) {
		cv_err("refusing socket directory %s: mode %04o is group or "
		       "world writable", dir, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* Removes a stale socket at path; -EADDRINUSE if a daemon answers. */
static int clear_stale(const char *path)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		cv_err("refusing to replace %s: not a socket", path);
		return -EEXIST;
	}
	fd = cv_ctl_connect(path);
	if (fd >= 0) {
		close(fd);
		cv_err("another cuvisord is listening on %s", path);
		return -EADDRINUSE;
	}
	if (fd != -ECONNREFUSED && fd != -ENOENT) {
		cv_err("cannot check %s: %s", path, strerror(-fd));
		return fd;
	}
	cv_info("removing stale socket %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int bind_listen(struct cv_d *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	/* Others may connect when --allow-uid names them; SO_PEERCRED then
	 * decides. Otherwise only we (and root) can. */
	mode_t mode = d->cfg.nallow ? 0666 : 0600;
	struct stat st;
	mode_t old;
	int fd, r;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->cfg.socket);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0)
		return -errno;
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || chmod(sa.sun_path, mode) < 0 || listen(fd, 128) < 0 ||
	    stat(sa.sun_path, &st) < 0) {
		r = -errno;
		cv_err("cannot listen on %s: %s", sa.sun_path, strerror(-r));
		close(fd);
		return r;
	}
	d->sock_dev = st.st_dev;
	d->sock_ino = st.st_ino;
	d->listen_fd = fd;
	return 0;
}

int cv_d_listen(struct cv_d *d)
{
	int r;

	r = check_dir(d->cfg.socket, d->cfg.nallow ? 0755 : 0700);
	if (r < 0)
		return r;
	r = clear_stale(d->cfg.socket);
	if (r < 0)
		return r;
	return bind_listen(d);
}

void cv_d_unlink_socket(struct cv_d *d)
{
	struct stat st;

	if (d->listen_fd < 0)
		return;
	close(d->listen_fd);
	d->listen_fd = -1;
	/* Only our own socket: a successor may already have bound the path. */
	if (lstat(d->cfg.socket, &st) == 0 && st.st_dev == d->sock_dev &&
	    st.st_ino == d->sock_ino)
		unlink(d->cfg.socket);
}

/*
 * Writes our pid to cfg.pidfile through a new file renamed into place, and
 * notes that file's identity: at exit we remove it only if it is still
 * ours, not a successor's that started while we stopped.
 */
int cv_d_write_pidfile(struct cv_d *d)
{
	const char *path = d->cfg.pidfile;
	char buf[32], tmp[sizeof(d->cfg.pidfile) + 32];
	struct stat st;
	int fd, n, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0644);
	if (fd < 0) {
		r = -errno;
		cv_err("cannot write pidfile %s: %s", tmp, strerror(-r));
		return r;
	}
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n || fstat(fd, &st) < 0)
		r = -EIO;
	close(fd);
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r) {
		cv_err("cannot write pidfile %s: %s", path, strerror(-r));
		unlink(tmp);
		return r;
	}
	d->pid_dev = st.st_dev;
	d->pid_ino = st.st_ino;
	return 0;
}

void cv_d_unlink_pidfile(struct cv_d *d)
{
	struct stat st;

	if (d->cfg.pidfile[0] && lstat(d->cfg.pidfile, &st) == 0 &&
	    st.st_dev == d->pid_dev && st.st_ino == d->pid_ino)
		unlink(d->cfg.pidfile);
}

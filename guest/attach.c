/* SPDX-License-Identifier: MIT */
/*
 * cuInit: attach this process to a vGPU. Nothing happens before the
 * program calls cuInit (no constructor, no connection at load time).
 *
 * Environment: CUVISOR_SOCKET (daemon socket), CUVISOR_GPU (physical GPU
 * to ask for), CUVISOR_MEM (quota in bytes), CUVISOR_LOG (LEVEL[:PATH];
 * the library is silent without it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../core/ctl.h"
#include "../core/log.h"
#include "../core/util.h"
#include "guest.h"

#define ATTACH_TIMEOUT_MS 65000 /* a little past the daemon's --start-timeout */

struct cv_guest g = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.ring_lock = PTHREAD_MUTEX_INITIALIZER,
	.slot_lock = PTHREAD_MUTEX_INITIALIZER,
	.slot_cond = PTHREAD_COND_INITIALIZER,
	.chunk_lock = PTHREAD_MUTEX_INITIALIZER,
	.chunk_cond = PTHREAD_COND_INITIALIZER,
	.init_result = -1,
	.memfd = -1,
	.link_fd = -1,
};

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

int cv_g_ready(void)
{
	int r = __atomic_load_n(&g.init_result, __ATOMIC_ACQUIRE);

	if (r < 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (r)
		return r;
	return g.lost ? CUDA_ERROR_DEVICE_UNAVAILABLE : CUDA_SUCCESS;
}

/*
 * Silent unless asked: level off, never stdout. Runs when the library is
 * loaded, because the runtime calls into the driver (cuGetProcAddress,
 * cuGetExportTable) before cuInit; it only reads the environment.
 */
__attribute__((constructor)) static void setup_logging(void)
{
	const char *s = getenv("CUVISOR_LOG");

	cv_log_init("cuvisor-guest", CV_LOG_OFF, NULL);
	if (s && *s && cv_log_init_spec("cuvisor-guest", s))
		cv_log_init("cuvisor-guest", CV_LOG_WARN, NULL);
}

static int env_num(const char *name, int64_t dflt, int64_t *out)
{
	const char *s = getenv(name);
	char *end;

	*out = dflt;
	if (!s || !*s)
		return 0;
	errno = 0;
	*out = strtoll(s, &end, 0);
	if (errno || *end || *out < -1) {
		cv_err("%s='%s' is not a number", name, s);
		return -EINVAL;
	}
	return 0;
}

/* Maps the region at the fixed address shared with every worker. */
static int map_region(int memfd)
{
	void *res, *p;

	res = mmap((void *)CV_REGION_ADDR, CV_REGION_SPAN, PROT_NONE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
			   MAP_FIXED_NOREPLACE, -1, 0);
	if (res == MAP_FAILED || res != (void *)CV_REGION_ADDR) {
		if (res != MAP_FAILED)
			munmap(res, CV_REGION_SPAN);
		cv_err("the address range at 0x%llx is taken in this process; cannot map the vGPU region",
		       (unsigned long long)CV_REGION_ADDR);
		return -EEXIST;
	}
	p = mmap(res, CV_HEAP_OFF, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, memfd, 0);
	if (p == MAP_FAILED) {
		munmap(res, CV_REGION_SPAN);
		return -errno;
	}
	g.region = p;
	return 0;
}

static int check_region(void)
{
	struct cv_region_hdr *h = (struct cv_region_hdr *)g.region;

	if (h->magic != CV_PROTO_MAGIC || h->version != CV_PROTO_VERSION ||
	    h->region_addr != CV_REGION_ADDR ||
	    h->window_addr != CV_WINDOW_ADDR ||
	    h->window_size != CV_WINDOW_SIZE) {
		cv_err("the vGPU region does not match this library (magic 0x%x version %u)",
		       h->magic, h->version);
		return -EPROTO;
	}
	g.hdr = h;
	g.ctl = (struct cv_ring_ctl *)(g.region + CV_RING_CTL_OFF);
	g.replies = (struct cv_reply *)(g.region + CV_REPLY_OFF);
	g.chunk_state = (uint32_t *)(g.region + CV_CHUNK_STATE_OFF);
	g.cbq = (struct cv_cb_queue *)(g.region + CV_CB_OFF);
	g.dev = h->dev;
	g.tenant = h->tenant_id;
	g.cb_done = __atomic_load_n(&g.cbq->done, __ATOMIC_RELAXED);
	return cv_ring_init(&g.ring, g.ctl, g.region + CV_RING_OFF,
			    CV_RING_SIZE);
}

static int attach_request(int sock)
{
	struct cv_ctl_attach a = { .pid = (uint32_t)getpid(),
				   .proto = CV_PROTO_VERSION };
	int64_t gpu, mem;

	if (env_num("CUVISOR_GPU", -1, &gpu) ||
	    env_num("CUVISOR_MEM", 0, &mem) || gpu > 4096)
		return -EINVAL;
	a.gpu = (int32_t)gpu;
	a.mem = mem > 0 ? (uint64_t)mem : 0;
	snprintf(a.name, sizeof(a.name), "%s", program_invocation_short_name);
	/* A vGPU on another host's GPU (cuvisor run --host). */
	if (getenv("CUVISOR_HOST") &&
	    snprintf(a.host, sizeof(a.host), "%s", getenv("CUVISOR_HOST")) >=
		    (int)sizeof(a.host))
		return -EINVAL;
	return cv_ctl_send(sock, CV_CTL_ATTACH, 0, &a, sizeof(a), NULL, 0);
}

/* Logs why the daemon refused us: the reason it sent (n bytes in buf,
 * a string; none from older daemons), else rc's. */
static void log_refusal(const char *path, int rc, char *buf, int n)
{
	int i;

	if (n <= 0 || n > CV_CTL_REASON_LEN)
		n = 0;
	buf[n ? n - 1 : 0] = 0;
	for (i = 0; buf[i]; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';
	cv_err("the daemon at %s refused a vGPU: %s (%s)", path,
	       buf[0] ? buf : strerror(-rc), strerror(-rc));
}

static int attach(void)
{
	char buf[CV_CTL_MAX];
	struct cv_ctl_attach_r r;
	struct cv_ctl_trust trust;
	struct cv_ctl_hdr h;
	char path[256], why[sizeof(struct cv_ctl_refused)];
	int sock, fds[2] = { -1, -1 }, nfds = 2, n, rc;

	rc = cv_ctl_default_path(path, sizeof(path));
	if (rc)
		return rc;
	/* Only a daemon of our own uid or root's (ctl.h says why). */
	trust.named = getenv("CUVISOR_SOCKET") && *getenv("CUVISOR_SOCKET");
	sock = cv_ctl_connect_daemon(path, &trust);
	if (sock == -EPERM || sock == -EINVAL) {
		cv_err("%s", trust.why);
		return sock;
	}
	if (sock < 0) {
		cv_err("no cuvisor daemon at %s (%s); start cuvisord, or run the program with `cuvisor run`",
		       path, strerror(-sock));
		return sock;
	}
	n = attach_request(sock);
	if (!n)
		n = cv_ctl_recv(sock, &h, buf, sizeof(buf), fds, &nfds,
				ATTACH_TIMEOUT_MS);
	rc = n < 0 ? cv_ctl_refusal_after(sock, n, why, sizeof(why)) :
		     cv_ctl_refusal(&h, buf, n, CV_CTL_ATTACH, why,
				    sizeof(why));
	if (rc < 0 && rc != n) {
		cv_err("the daemon at %s refused a vGPU: %s", path, why);
		goto out;
	}
	if (n < 0 || h.type != (CV_CTL_ATTACH | CV_CTL_REPLY)) {
		rc = n < 0 ? n : -EPROTO;
		cv_err("attach to the daemon at %s failed: %s", path,
		       strerror(-rc));
		goto out;
	}
	if (h.status) {
		rc = h.status;
		log_refusal(path, rc, buf, n);
		goto out;
	}
	if (n != (int)sizeof(r) || nfds != 2) {
		rc = -EPROTO;
		goto out;
	}
	memcpy(&r, buf, sizeof(r));
	rc = map_region(fds[0]);
	if (rc)
		goto out;
	g.memfd = fds[0];
	g.link_fd = fds[1];
	fds[0] = fds[1] = -1;
	rc = check_region();
	if (!rc)
		cv_info("attached as tenant %llu on GPU %d (worker %u, quota %llu bytes)",
			(unsigned long long)r.tenant_id, r.gpu, r.worker_pid,
			(unsigned long long)r.quota);
out:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	close(sock);
	return rc;
}

static int init_allocators(void)
{
	int rc = cv_vaspace_init(&g.dva, CV_WINDOW_ADDR, CV_WINDOW_SIZE);

	if (!rc)
		rc = cv_vaspace_init(&g.hva, 0, CV_HEAP_MAX);
	return rc;
}

CV_API CUresult cuInit(unsigned int flags)
{
	int rc;

	if (flags)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&init_lock);
	if (g.init_result < 0) {
		rc = attach();
		if (!rc)
			rc = init_allocators();
		if (rc)
			cv_err("cuInit failed: no vGPU for this process");
		__atomic_store_n(&g.init_result,
				 rc ? CUDA_ERROR_NO_DEVICE : CUDA_SUCCESS,
				 __ATOMIC_RELEASE);
	}
	rc = g.init_result;
	pthread_mutex_unlock(&init_lock);
	return (CUresult)rc;
}

CV_API CUresult cuDriverGetVersion(int *v)
{
	if (!v)
		return CUDA_ERROR_INVALID_VALUE;
	/* Before cuInit the driver answers with its own version too. */
	*v = g.init_result == 0 && g.dev.driver_version ?
		     (int)g.dev.driver_version : CUDA_VERSION;
	if (*v < CUDA_VERSION)
		*v = CUDA_VERSION;
	return CUDA_SUCCESS;
}

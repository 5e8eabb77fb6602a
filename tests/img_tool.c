/* SPDX-License-Identifier: MIT */
/*
 * Damages checkpoint images the way the refusal tests need (tests/run.sh,
 * ckpt section), byte-exactly, where a shell cannot (checksums):
 *
 *	img_tool version FILE N     rewrite the format version to N and fix
 *	                            the header checksum, so that only the
 *	                            version is wrong
 *	img_tool flip FILE TYPE     flip one byte in the middle of the
 *	                            largest section of TYPE (its checksum
 *	                            then fails)
 *	img_tool sections FILE      print "TYPE AUX RAW STORED" per section
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/hash.h"
#include "../core/image.h"

static int usage(void)
{
	fprintf(stderr, "usage: img_tool version FILE N | flip FILE TYPE | "
		"sections FILE\n");
	return 2;
}

static int set_version(int fd, uint32_t v)
{
	uint8_t h[CV_IMG_HDR_SIZE];

	if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return -EIO;
	memcpy(h + 8, &v, 4);
	cv_hash128(h, 176, h + 176);
	return pwrite(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) ? 0 : -EIO;
}

static int flip(int fd, uint32_t type)
{
	const struct cv_img_sec *s, *best = NULL;
	struct cv_img_r *r;
	char err[256];
	uint32_t i;
	uint8_t b;
	int rc;

	rc = cv_img_r_open(&r, fd, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "img_tool: %s\n", err);
		return rc;
	}
	for (i = 0; i < cv_img_r_count(r); i++) {
		s = cv_img_r_sec(r, i);
		if (s->type == type && s->stored && (!best ||
						     s->stored > best->stored))
			best = s;
	}
	rc = -ENOENT;
	if (best && pread(fd, &b, 1, (off_t)(best->off + best->stored / 2)) ==
			    1) {
		b ^= 0x5a;
		rc = pwrite(fd, &b, 1, (off_t)(best->off + best->stored / 2)) ==
				     1 ? 0 : -EIO;
	}
	cv_img_r_close(r);
	return rc;
}

static int sections(int fd)
{
	const struct cv_img_sec *s;
	struct cv_img_r *r;
	char err[256];
	uint32_t i;

	if (cv_img_r_open(&r, fd, err, sizeof(err))) {
		fprintf(stderr, "img_tool: %s\n", err);
		return -EINVAL;
	}
	for (i = 0; i < cv_img_r_count(r); i++) {
		s = cv_img_r_sec(r, i);
		printf("%u 0x%llx %llu %llu\n", s->type,
		       (unsigned long long)s->aux, (unsigned long long)s->raw,
		       (unsigned long long)s->stored);
	}
	cv_img_r_close(r);
	return 0;
}

int main(int argc, char **argv)
{
	int fd, rc;

	if (argc < 3)
		return usage();
	fd = open(argv[2], !strcmp(argv[1], "sections") ? O_RDONLY : O_RDWR);
	if (fd < 0) {
		perror(argv[2]);
		return 1;
	}
	if (!strcmp(argv[1], "version") && argc == 4)
		rc = set_version(fd, (uint32_t)strtoul(argv[3], NULL, 0));
	else if (!strcmp(argv[1], "flip") && argc == 4)
		rc = flip(fd, (uint32_t)strtoul(argv[3], NULL, 0));
	else if (!strcmp(argv[1], "sections"))
		rc = sections(fd);
	else
		return usage();
	close(fd);
	if (rc)
		fprintf(stderr, "img_tool %s: %s\n", argv[1], strerror(-rc));
	return rc ? 1 : 0;
}

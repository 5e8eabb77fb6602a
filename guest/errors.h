/* SPDX-License-Identifier: MIT */
/* CUresult names and descriptions (table generated from cuda.h). */
#ifndef CV_ERRORS_H
#define CV_ERRORS_H

struct cv_errname {
	int value;
	const char *name;
	const char *desc;
};

extern const struct cv_errname cv_errnames[];
extern const unsigned cv_nerrnames;

#endif

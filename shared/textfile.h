/* A line reader for the project's small whitespace-separated config files. */
#ifndef OP_TEXTFILE_H
#define OP_TEXTFILE_H

#include <stddef.h>
#include <stdio.h>

/* Lines longer than this are an error: config lines are short by nature. */
#define OP_TEXTFILE_LINE_MAX 1024

struct op_textfile {
    FILE *fp;                       /* owned; closed by op_textfile_close */
    int line_no;                    /* 1-based number of the line last read */
    char buf[OP_TEXTFILE_LINE_MAX]; /* the current line, split in place */
    char err[128];                  /* why op_textfile_next returned -2 */
};

/* Opens path; returns 0, or -1 with "cannot open '<path>': <why>" in err. */
int op_textfile_open(struct op_textfile *tf, const char *path, char *err, size_t errlen);

/*
 * Reads the next line that is not blank or a '#' comment and splits it on
 * spaces and tabs into at most `max` fields (pointers into tf->buf, valid
 * until the next call). Returns the number of fields (more than max means the
 * line had too many: only max are stored), -1 at end of file, or -2 on a line
 * that is too long or contains a NUL/control byte (tf->err says which).
 */
int op_textfile_next(struct op_textfile *tf, char **fields, int max);

void op_textfile_close(struct op_textfile *tf);

#endif

/* A line reader for the project's small whitespace-separated config files. */
#include "shared/textfile.h"

#include <errno.h>
#include <string.h>

int op_textfile_open(struct op_textfile *tf, const char *path, char *err, size_t errlen)
{
    tf->line_no = 0;
    tf->err[0] = '\0';
    tf->fp = fopen(path, "r");
    if (!tf->fp) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int op_textfile_next(struct op_textfile *tf, char **fields, int max)
{
    while (fgets(tf->buf, sizeof(tf->buf), tf->fp)) {
        tf->line_no++;
        size_t len = strlen(tf->buf);
        if (len == sizeof(tf->buf) - 1 && tf->buf[len - 1] != '\n' && !feof(tf->fp)) {
            snprintf(tf->err, sizeof(tf->err), "line longer than %d bytes",
                     OP_TEXTFILE_LINE_MAX - 2);
            return -2;
        }
        while (len > 0 && (tf->buf[len - 1] == '\n' || tf->buf[len - 1] == '\r'))
            tf->buf[--len] = '\0';
        char *hash = strchr(tf->buf, '#');
        if (hash)
            *hash = '\0';
        for (char *p = tf->buf; *p; p++) {
            if ((unsigned char)*p < 0x20 && *p != '\t') {
                snprintf(tf->err, sizeof(tf->err), "control character 0x%02x", (unsigned char)*p);
                return -2;
            }
        }
        int n = 0;
        char *save = NULL;
        for (char *tok = strtok_r(tf->buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
            if (n < max)
                fields[n] = tok;
            n++;
        }
        if (n > 0)
            return n;
    }
    return -1;
}

void op_textfile_close(struct op_textfile *tf)
{
    if (tf->fp)
        fclose(tf->fp);
    tf->fp = NULL;
}

/*
 * maildir — deliver one message into one Maildir, durably.
 *
 * The message is written to DIR/tmp/UNIQUE, fsync'd, renamed into
 * DIR/new/UNIQUE:2, and DIR/new is fsync'd, so a crash at any point leaves
 * either nothing visible in new/ or a complete message (qmail's rule).
 * Missing tmp/new/cur directories are created (mode 0700).
 *
 * The directory path comes from configuration and the resolver, never
 * from raw envelope data; still, every component is opened with
 * O_NOFOLLOW|O_DIRECTORY so a symlink planted in the store is refused,
 * and nothing is created outside the given directory.
 *
 * The bytes written are: prefix (Return-Path:, Delivered-To:, Received:
 * ... already formatted with CRLF) then the body read from body_fd from
 * offset 0 to EOF (pread, the fd is not moved). CRLF line ends are
 * converted to LF, the Maildir convention.
 *
 * Result: MAILDIR_OK, MAILDIR_TEMP (retry later: ENOSPC, EIO, EDQUOT,
 * EAGAIN...) or MAILDIR_PERM (refuse: symlink, not a directory, EACCES
 * on the root); err receives a one-line reason with the errno text.
 */
#ifndef TODOKU_MAILDIR_H
#define TODOKU_MAILDIR_H

#include <stddef.h>

enum maildir_result { MAILDIR_OK = 0, MAILDIR_TEMP, MAILDIR_PERM };

enum maildir_result maildir_deliver(const char *dir, const char *prefix,
				    size_t prefix_len, int body_fd,
				    char *err, size_t errlen);

#endif

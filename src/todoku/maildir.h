/*
 * maildir — deliver one message into one Maildir, durably.
 *
 * dir is the user's Maildir. If it does not exist it is created (mode
 * 0700); its parent (the domain's mailbox root) must exist and is never
 * created. Missing tmp/new/cur directories inside it are created too.
 *
 * The message is written to DIR/tmp/UNIQUE, fsync'd, renamed into
 * DIR/new/UNIQUE (no ":2," info suffix: messages in new/ carry none),
 * and DIR/new is fsync'd, so a crash at any point leaves either nothing
 * visible in new/ or a complete message (qmail's rule). UNIQUE is
 * "<sec>.M<usec>P<pid>Q<counter>.<host>", with '/' and ':' in the host
 * name written as \057 and \072.
 *
 * The directory path comes from configuration and the resolver, never
 * from raw envelope data; still, DIR and every directory inside it are
 * opened with O_NOFOLLOW|O_DIRECTORY and used through openat/mkdirat/
 * renameat on those fds, so a symlink planted at DIR or at tmp/new/cur
 * is refused (MAILDIR_PERM) and nothing is written through it. The
 * parent's own path is resolved normally: it is the operator's, and a
 * linked /var/mail is common.
 *
 * The bytes written are: prefix (Return-Path:, Delivered-To:, Received:
 * ... already formatted with CRLF) then the body read from body_fd from
 * offset 0 to EOF (pread, the fd's offset is not moved). CRLF line ends
 * are converted to LF, the Maildir convention; a CR not followed by LF
 * is kept.
 *
 * Result: MAILDIR_OK; MAILDIR_TEMP (retry later: ENOSPC, EDQUOT, EIO,
 * EAGAIN, EINTR, EMFILE, ENFILE, ENOMEM, and any errno not listed under
 * PERM, e.g. ENOENT for a missing or unmounted mailbox root, so mail
 * waits for the operator instead of bouncing); MAILDIR_PERM (a person
 * must act: ELOOP (symlink), ENOTDIR, EACCES, EPERM, EROFS). On any
 * failure the tmp file is removed. err receives one line,
 * "maildir DIR: step: reason".
 */
#ifndef TODOKU_MAILDIR_H
#define TODOKU_MAILDIR_H

#include <stddef.h>

enum maildir_result { MAILDIR_OK = 0, MAILDIR_TEMP, MAILDIR_PERM };

enum maildir_result maildir_deliver(const char *dir, const char *prefix,
				    size_t prefix_len, int body_fd, char *err,
				    size_t errlen);

/*
 * Idempotent variant: the file in new/ is named "KEY.HOST" (KEY made by
 * the caller from the queue id and recipient, e.g. "1795567534.Q...R12")
 * and is linked, not renamed, into place. If that name already exists, an
 * earlier attempt that crashed before its result was recorded delivered
 * it: the copy is dropped and MAILDIR_OK returned, so a redelivery after
 * a crash does not duplicate while the message is still in new/. (Once a
 * mail reader moved it to cur/, a redelivery does duplicate.)
 */
enum maildir_result maildir_deliver_once(const char *dir, const char *key,
					 const char *prefix, size_t prefix_len,
					 int body_fd, char *err, size_t errlen);

#endif

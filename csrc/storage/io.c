/*
 * io.c: what the write path shares: the errno -> HR_E* map, and the atomic replace of a
 * small file (meta, the truncation intent). Failures to test it come from below, from the
 * struct hr_fs the log runs over (fs.h): helios.testkit's fault-injecting one makes the
 * next writes or syncs fail where no small file system can be mounted.
 */
#include <errno.h>

#include "impl.h"

int hr__errno_code(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return HR_ENOSPACE;
    case ENOMEM:
        return HR_ENOMEM;
    default:
        /* EIO, EROFS, EBADF...: the device or filesystem will not take the write. */
        return HR_EIO;
    }
}

int hr__io_replace(struct hr_fs *fs, const char *tmp, const char *path,
                   const void *b, size_t len, int dir_h, const char *dir, bool *renamed,
                   const char **what)
{
    *renamed = false;
    *what = "create";
    int dh = -1;
    int r;
    int h = hr_fs_open(fs, tmp, HR_FS_RDWR | HR_FS_CREATE | HR_FS_TRUNC);
    if (h < 0) {
        r = h;
        goto fail;
    }
    *what = "write";
    if ((r = hr_fs_pwrite(fs, h, b, len, 0)) < 0) {
        goto fail;
    }
    *what = "fsync";
    if ((r = hr_fs_sync(fs, h, false)) < 0) {
        goto fail;
    }
    hr_fs_close(fs, h);
    h = -1;
    *what = "rename";
    if ((r = hr_fs_rename(fs, tmp, path)) < 0) {
        goto fail;
    }
    *renamed = true;
    *what = "fsync dir";
    if (dir_h < 0 && (dir_h = dh = hr_fs_open(fs, dir, HR_FS_DIR)) < 0) {
        r = dh;
        goto fail;
    }
    if ((r = hr_fs_sync(fs, dir_h, false)) < 0) {
        goto fail;
    }
    if (dh >= 0) {
        hr_fs_close(fs, dh);
    }
    return 0;
fail:
    if (h >= 0) {
        hr_fs_close(fs, h);
    }
    if (dh >= 0) {
        hr_fs_close(fs, dh);
    }
    if (!*renamed) {
        hr_fs_unlink(fs, tmp);
    }
    return r;
}
